"""What differs between the Blender versions the add-on supports (4.2 LTS, 4.5 LTS, 5.0), in one place.

Every version-dependent call of the add-on (and of its tests) goes through one function here, chosen by
feature detection: each check asks for the exact attribute or parameter that differs, so a version in
between (4.3, 4.4) takes whichever branch its API has. What differs:

- F-curves: 5.0 removed `Action.fcurves`; its `Action.fcurve_ensure_for_datablock` takes a `group_name`.
  4.4 and 4.5 have that method without `group_name` (and the legacy `Action.fcurves`, which would create
  a slot the camera is not assigned to). 4.2 has only `Action.fcurves.new(..., action_group=...)`.
  Reading back: slotted actions (4.4+) keep the curves in the channelbag of the datablock's slot.
- Sequencer: `SequenceEditor.strips` / `strips_all` arrived in 4.4; 4.2 has `sequences` /
  `sequences_all` (the same collections); `new_effect` names its input `input1` (4.2: `seq1`).
  `context.sequencer_scene` (5.0) may differ from `context.scene`.
- Geometry nodes: the Import PLY and Format String nodes, which the streamed point storage needs, arrived
  in 4.5 (neither exists in 4.2): there the importer packs the points into the .blend and says so.
- Materials: 5.0 gives every new material a node tree; 4.2 and 4.5 only once `use_nodes` is set.
- Evaluated geometry: `Object.evaluated_geometry()` arrived in 4.3; in 4.2 a modifier's point cloud is a
  depsgraph instance of the object.
Same in all three: `bpy.utils.extension_path_user`, the extension install operators, node-tree
`interface`, `UILayout.progress`, movie strip retiming keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import bpy

logger = logging.getLogger(__name__)

Read = TypeVar("Read")

# The geometry-nodes types the streamed point storage is built from (point_nodes._streamed_head).
_STREAMED_NODE_TYPES = ("GeometryNodeImportPLY", "FunctionNodeFormatString")
# The first Blender release with all of them, for messages.
STREAMED_SINCE = "4.5"


def new_fcurve(
    action: bpy.types.Action, datablock: bpy.types.ID, data_path: str, index: int, group: str
) -> bpy.types.FCurve:
    """A new F-curve of `datablock`'s `data_path[index]` in `action`, which is (or will be) its action.

    On 4.4-4.5 the curve is made for the datablock's own slot but stays outside `group` (the method there
    takes no group).
    """
    ensure = bpy.types.Action.bl_rna.functions.get("fcurve_ensure_for_datablock")
    if ensure is None:
        return action.fcurves.new(data_path, index=index, action_group=group)
    if "group_name" in ensure.parameters:
        return action.fcurve_ensure_for_datablock(datablock, data_path, index=index, group_name=group)
    return action.fcurve_ensure_for_datablock(datablock, data_path, index=index)


def assigned_fcurves(datablock: bpy.types.ID) -> list[bpy.types.FCurve]:
    """The F-curves that animate `datablock`: its action's curves for its slot (4.4+), or all of them (4.2)."""
    animation = datablock.animation_data
    if animation is None or animation.action is None:
        return []
    if not hasattr(animation, "action_slot"):
        return list(animation.action.fcurves)
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    channelbag = action_get_channelbag_for_slot(animation.action, animation.action_slot)
    return list(channelbag.fcurves) if channelbag is not None else []


def material_node_tree(material: bpy.types.Material) -> bpy.types.ShaderNodeTree:
    """The material's shader node tree, made on 4.x (which starts a material without one until use_nodes)."""
    if material.node_tree is None:
        material.use_nodes = True
    return material.node_tree


def sequencer_scene(context: bpy.types.Context) -> bpy.types.Scene:
    """The scene whose strips the user edits: context.sequencer_scene (5.0), else context.scene."""
    return getattr(context, "sequencer_scene", None) or context.scene


def top_level_strips(editor: bpy.types.SequenceEditor):
    """The editor's top-level strips, where new_movie() and friends add strips (strips, or 4.2's sequences)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor: bpy.types.SequenceEditor):
    """Every strip of the editor, inside meta-strips too (strips_all, or 4.2's sequences_all)."""
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def new_effect_strip(
    editor: bpy.types.SequenceEditor, name: str, kind: str, channel: int, frame_start: int, source
) -> bpy.types.EffectStrip:
    """A new effect strip of type `kind` on the strip `source` (its input is `input1`, 4.2's `seq1`)."""
    strips = top_level_strips(editor)
    source_parameter = "input1" if "input1" in strips.bl_rna.functions["new_effect"].parameters else "seq1"
    return strips.new_effect(name, kind, channel, frame_start, **{source_parameter: source})


def streamed_points_supported() -> bool:
    """Whether this Blender has the geometry nodes that read a frame's PLY file while playing (4.5+)."""
    return all(hasattr(bpy.types, name) for name in _STREAMED_NODE_TYPES)


def read_evaluated_point_cloud(
    obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, read: Callable[[bpy.types.PointCloud], Read]
) -> Read | None:
    """`read(cloud)` on the point cloud that `obj`'s modifiers evaluate to now, or None when there is none.

    The cloud lives only while its evaluated geometry does, so it is read inside this call.
    """
    evaluated = obj.evaluated_get(depsgraph)
    if hasattr(evaluated, "evaluated_geometry"):
        geometry = evaluated.evaluated_geometry()  # owns the cloud: keep it referenced while reading
        return read(geometry.pointcloud) if geometry.pointcloud is not None else None
    for instance in depsgraph.object_instances:
        if instance.object.type == "POINTCLOUD" and instance.object.original == obj:
            return read(instance.object.data)
    return None
