"""The engine: video decoding, the Geo4D network, alignment and results on disk. Never imports bpy."""
