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
