"""The package's architecture, checked: its folders import only the folders below them (no
import back up), no import cycles between tfvae's modules (module-level or inside functions),
no module using another's private names, no Keras internals, no function over 80 lines nor
class over 200."""
import ast
import os

from conftest import REPO

PACKAGE = os.path.join(REPO, "tfvae")
# Each folder may import its own modules and those of the folders before it; the core (the
# package's own files) imports only the core. ``data``, ``distributions`` and ``metrics`` share a
# rank: they do not import each other.
RANKS = {"core": 0, "data": 1, "distributions": 1, "metrics": 1, "inference": 2, "models": 3, "results": 4,
         "training": 5, "cli": 6}


def _modules():
    """``{dotted module name below tfvae: its AST}``, e.g. ``models.model``, ``config``."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        rel = os.path.relpath(folder, PACKAGE)
        for f in sorted(files):
            if f.endswith(".py"):
                name = f[:-3] if rel == "." else f"{rel.replace(os.sep, '.')}.{f[:-3]}"
                out[name] = ast.parse(open(os.path.join(folder, f)).read(), f)
    return out


def _folder(module):
    return module.split(".")[0] if "." in module else "core"


def _resolve(name, modules):
    """A dotted name below tfvae -> the module it names (a package's ``__init__``)."""
    if name in modules:
        return name
    if f"{name}.__init__" in modules:
        return f"{name}.__init__"
    return None


def _imports(tree, modules):
    """``{local name: tfvae module}`` and the set of tfvae modules ``tree`` imports anywhere."""
    names, deps = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfvae"):
            base = node.module[len("tfvae."):] if node.module != "tfvae" else ""
            for a in node.names:
                target = _resolve(f"{base}.{a.name}" if base else a.name, modules)
                if target is not None:
                    deps.add(target)
                    names[a.asname or a.name] = target
                elif base:
                    deps.add(_resolve(base, modules) or base)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tfvae."):
                    deps.add(_resolve(a.name[len("tfvae."):], modules) or a.name)
    return names, deps


def test_each_folder_imports_only_the_folders_below_it():
    modules = _modules()
    assert set(map(_folder, modules)) == set(RANKS), sorted(set(map(_folder, modules)))
    wrong = []
    for m, tree in modules.items():
        here = _folder(m)
        for dep in _imports(tree, modules)[1]:
            there = _folder(dep)
            if there != here and RANKS[there] >= RANKS[here]:
                wrong.append(f"{m} imports {dep} ({there} is not below {here})")
    assert not wrong, wrong


def test_tfvae_imports_its_modules_from_their_folders_not_through_the_flat_names():
    import tfvae
    found = [f"{m}: from tfvae import {a.name}" for m, tree in _modules().items()
             for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and node.module == "tfvae" for a in node.names if a.name in tfvae.MOVED]
    assert not found, found


def test_no_function_over_80_lines_nor_class_over_200():
    long = []
    for m, tree in _modules().items():
        for node in ast.walk(tree):
            size = node.end_lineno - node.lineno + 1 if hasattr(node, "end_lineno") else 0
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 80:
                long.append(f"{m}.{node.name}: {size} lines")
            elif isinstance(node, ast.ClassDef) and size > 200:
                long.append(f"class {m}.{node.name}: {size} lines")
    assert not long, long


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
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                assert "keras.src" not in open(os.path.join(folder, name)).read(), name


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


def test_the_flat_names_of_tfvae_0_3_resolve_to_the_moved_modules():
    """``from tfvae import train`` (0.3's layout) gives the module in its folder."""
    import importlib

    import tfvae
    for name, folder in tfvae.MOVED.items():
        assert getattr(tfvae, name) is importlib.import_module(f"tfvae.{folder}.{name}")
    from tfvae import priors
    assert priors.__name__ == "tfvae.distributions.priors"
