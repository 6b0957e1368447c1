"""Geometry and shader nodes of the point cloud: pick the frame, turn vertices into sized points, colour them.

Both storage modes share one node group layout: a head that yields the current frame's vertices as a mesh
(streamed: an Import PLY node reading a Format String of the frame; packed: the vertices whose `frame`
attribute equals the frame index) and a tail that makes points whose radius follows the camera distance.
Result frame k shows at timeline frame F + k; outside [F, F + T) the cloud is empty. A third mode, "STATIC",
has no head: the object's own vertices (a split result's static set) show at every frame.
"""

from __future__ import annotations

import bpy

from .blender_compat import material_node_tree
from .core.result import FRAMES_DIR

# The PLY importer names the vertex colour attribute "Col" (byte colours read as sRGB); packed mode matches it.
COLOR_ATTRIBUTE = "Col"
FRAME_ATTRIBUTE = "frame"
# Format of a frame file inside the result folder, in Blender's Format String syntax (and Python's).
FRAME_FILE_FORMAT = FRAMES_DIR + "/{index:06}.ply"

_INPUTS = (
    ("Geometry", "NodeSocketGeometry"),
    ("Folder", "NodeSocketString"),
    ("First Frame", "NodeSocketInt"),
    ("Frame Count", "NodeSocketInt"),
    ("Camera", "NodeSocketObject"),
    ("Focal", "NodeSocketFloat"),
    ("Point Size", "NodeSocketFloat"),
    ("Point Radius", "NodeSocketFloat"),
)


def _node(tree: bpy.types.NodeTree, kind: str, **settings) -> bpy.types.Node:
    node = tree.nodes.new(kind)
    for name, value in settings.items():
        setattr(node, name, value)
    return node


def _math(tree: bpy.types.NodeTree, operation: str, a, b) -> bpy.types.NodeSocket:
    """Output of a float Math node; a and b are sockets or numbers."""
    node = _node(tree, "ShaderNodeMath", operation=operation)
    for socket, value in zip(node.inputs[:2], (a, b), strict=True):
        if isinstance(value, bpy.types.NodeSocket):
            tree.links.new(value, socket)
        else:
            socket.default_value = value
    return node.outputs[0]


def _compare_int(tree: bpy.types.NodeTree, operation: str, a, b) -> bpy.types.NodeSocket:
    """Output of an integer Compare node; the integer inputs are found by identifier (names repeat)."""
    node = _node(tree, "FunctionNodeCompare", data_type="INT", operation=operation)
    by_identifier = {socket.identifier: socket for socket in node.inputs}
    tree.links.new(a, by_identifier["A_INT"])
    tree.links.new(b, by_identifier["B_INT"])
    return node.outputs[0]


def build_point_nodes(name: str, storage: str, material: bpy.types.Material) -> bpy.types.NodeTree:
    """The geometry node group of a point cloud object; its inputs are set on the modifier."""
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    for socket_name, socket_type in _INPUTS:
        tree.interface.new_socket(socket_name, in_out="INPUT", socket_type=socket_type)
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in = _node(tree, "NodeGroupInput")
    group_out = _node(tree, "NodeGroupOutput")

    frame = _math(
        tree,
        "SUBTRACT",
        _node(tree, "GeometryNodeInputSceneTime").outputs["Frame"],
        group_in.outputs["First Frame"],
    )
    to_int = _node(tree, "FunctionNodeFloatToInt", rounding_mode="FLOOR")
    tree.links.new(frame, to_int.inputs[0])
    index = to_int.outputs[0]
    if storage == "STATIC":
        frame_mesh = group_in.outputs["Geometry"]
    elif storage == "STREAMED":
        frame_mesh = _streamed_head(tree, group_in, index)
    else:
        frame_mesh = _packed_head(tree, group_in, index)

    to_points = _node(tree, "GeometryNodeMeshToPoints", mode="VERTICES")
    tree.links.new(frame_mesh, to_points.inputs["Mesh"])
    tree.links.new(_radius(tree, group_in), to_points.inputs["Radius"])
    set_material = _node(tree, "GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = material
    tree.links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    tree.links.new(set_material.outputs["Geometry"], group_out.inputs["Geometry"])
    return tree


def _streamed_head(tree: bpy.types.NodeTree, group_in: bpy.types.Node, index) -> bpy.types.NodeSocket:
    """The PLY of frame `index`, read from Folder, or nothing outside [0, Frame Count)."""
    path = _node(tree, "FunctionNodeFormatString")
    path.format_items.new("STRING", "folder")
    path.format_items.new("INT", "index")
    path.inputs["Format"].default_value = "{folder}" + FRAME_FILE_FORMAT
    tree.links.new(group_in.outputs["Folder"], path.inputs["folder"])
    tree.links.new(index, path.inputs["index"])
    read = _node(tree, "GeometryNodeImportPLY")
    tree.links.new(path.outputs["String"], read.inputs["Path"])
    zero = _node(tree, "FunctionNodeInputInt", integer=0).outputs[0]
    in_range = _node(tree, "FunctionNodeBooleanMath", operation="AND")
    tree.links.new(_compare_int(tree, "GREATER_EQUAL", index, zero), in_range.inputs[0])
    tree.links.new(
        _compare_int(tree, "LESS_THAN", index, group_in.outputs["Frame Count"]), in_range.inputs[1]
    )
    # A geometry switch evaluates only the branch it takes, so no file is read outside the range.
    switch = _node(tree, "GeometryNodeSwitch", input_type="GEOMETRY")
    tree.links.new(in_range.outputs[0], switch.inputs["Switch"])
    tree.links.new(read.outputs["Mesh"], switch.inputs["True"])
    return switch.outputs[0]


def _packed_head(tree: bpy.types.NodeTree, group_in: bpy.types.Node, index) -> bpy.types.NodeSocket:
    """The stored vertices whose `frame` attribute equals `index`."""
    frame_of_point = _node(tree, "GeometryNodeInputNamedAttribute", data_type="INT")
    frame_of_point.inputs["Name"].default_value = FRAME_ATTRIBUTE
    delete = _node(tree, "GeometryNodeDeleteGeometry", domain="POINT")
    tree.links.new(group_in.outputs["Geometry"], delete.inputs["Geometry"])
    tree.links.new(
        _compare_int(tree, "NOT_EQUAL", frame_of_point.outputs["Attribute"], index),
        delete.inputs["Selection"],
    )
    return delete.outputs["Geometry"]


def _radius(tree: bpy.types.NodeTree, group_in: bpy.types.Node) -> bpy.types.NodeSocket:
    """Point Radius when positive, else Point Size pixels seen from the camera: size / 2 * distance / focal."""
    camera = _node(tree, "GeometryNodeObjectInfo", transform_space="RELATIVE")
    tree.links.new(group_in.outputs["Camera"], camera.inputs["Object"])
    distance = _node(tree, "ShaderNodeVectorMath", operation="DISTANCE")
    tree.links.new(_node(tree, "GeometryNodeInputPosition").outputs[0], distance.inputs[0])
    tree.links.new(camera.outputs["Location"], distance.inputs[1])
    per_unit = _math(
        tree,
        "DIVIDE",
        _math(tree, "MULTIPLY", group_in.outputs["Point Size"], 0.5),
        group_in.outputs["Focal"],
    )
    scaled = _math(tree, "MULTIPLY", distance.outputs["Value"], per_unit)
    fixed = _math(tree, "GREATER_THAN", group_in.outputs["Point Radius"], 0.0)
    switch = _node(tree, "GeometryNodeSwitch", input_type="FLOAT")
    tree.links.new(fixed, switch.inputs["Switch"])
    tree.links.new(scaled, switch.inputs["False"])
    tree.links.new(group_in.outputs["Point Radius"], switch.inputs["True"])
    return switch.outputs[0]


def build_point_material(name: str) -> bpy.types.Material:
    """An unlit material showing each point's footage colour, in the viewport and in renders."""
    material = bpy.data.materials.new(name)
    tree = material_node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    color = nodes.new("ShaderNodeAttribute")
    color.attribute_type = "GEOMETRY"
    color.attribute_name = COLOR_ATTRIBUTE
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(color.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material
