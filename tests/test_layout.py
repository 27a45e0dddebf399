"""The package's architecture, checked: no import cycles between tfvae's modules (module-level
or inside functions), no module using another's private names, no Keras internals."""
import ast
import os

from conftest import REPO

PACKAGE = os.path.join(REPO, "tfvae")


def _modules():
    return {f[:-3]: ast.parse(open(os.path.join(PACKAGE, f)).read(), f)
            for f in sorted(os.listdir(PACKAGE)) if f.endswith(".py")}


def _imports(tree, modules):
    """``{local name: tfvae module}`` and the set of tfvae modules ``tree`` imports anywhere."""
    names, deps = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfvae"):
            if node.module == "tfvae":
                for a in node.names:
                    if a.name in modules:
                        deps.add(a.name)
                        names[a.asname or a.name] = a.name
            else:
                deps.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tfvae."):
                    deps.add(a.name.split(".")[1])
    return names, deps


def test_no_import_cycles():
    modules = _modules()
    graph = {m: _imports(tree, modules)[1] - {m} for m, tree in modules.items()}
    cycles = []

    def visit(start, node, path):
        for dep in graph.get(node, ()):
            if dep == start:
                cycles.append(" -> ".join(path + [dep]))
            elif dep not in path:
                visit(start, dep, path + [dep])
    for m in graph:
        visit(m, m, [m])
    assert not cycles, cycles[:5]


def test_no_module_uses_another_modules_private_names():
    modules = _modules()
    found = []
    for m, tree in modules.items():
        names, _ = _imports(tree, modules)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in names and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{m}.py:{node.lineno} {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfvae"):
                found += [f"{m}.py:{node.lineno} from {node.module} import {a.name}"
                          for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found


def test_no_keras_internals():
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py"):
            text = open(os.path.join(PACKAGE, name)).read()
            assert "keras.src" not in text, name


# Private attributes of TensorFlow, Keras or TFP that tfvae reads, each because no public API
# exists, with the test that fails if the library changes them.
FOREIGN_PRIVATE = {
    "_index_dict": "optimizers.Adam: tests/test_optimizers.py (same steps as Keras's Adam)",
    "_var_key": "optimizers.Adam: tests/test_optimizers.py",
    "_momentums": "optimizers.Adam: tests/test_optimizers.py (Keras checkpoints load)",
    "_velocities": "optimizers.Adam: tests/test_optimizers.py",
    "_network": "posteriors: tests/test_flows.py (an IAF starts as the identity)",
}


# Public APIs whose names start with an underscore.
PUBLIC_WITH_UNDERSCORE = ("_replace", "_asdict", "_fields", "_exit")


def test_no_private_attribute_of_a_library_is_read_unless_listed():
    """``obj._name`` where tfvae defines no ``_name`` of its own reads a library's private
    state: it must be in FOREIGN_PRIVATE, with the test that pins it."""
    modules = _modules()
    own = set()
    for tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif (isinstance(node, ast.Call) and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)
                  and isinstance(node.args[1].value, str)):  # setattr(obj, "_name", ...)
                own.add(node.args[1].value)
    found = sorted({f"{m}.py:{node.lineno} .{node.attr}" for m, tree in modules.items()
                    for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in own
                    and node.attr not in (*FOREIGN_PRIVATE, *PUBLIC_WITH_UNDERSCORE)})
    assert not found, found
