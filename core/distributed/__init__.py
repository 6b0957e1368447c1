"""Windows and shots over a Ray cluster (the optional `geo4d[ray]`): actors.py, driver.py, shots.py.

Only actors.py and driver.py import ray, and only when a run asks for it.
"""
