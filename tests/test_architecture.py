"""Dependencies point one way (docs/architecture.md): config → snapshots → bagtracker.

Read from the source with ast, so an import anywhere in a module (top level, inside a function,
under TYPE_CHECKING) counts.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package):
    """(file, module) for every import under ``package``/, relative imports resolved."""
    for path in sorted((ROOT / package).rglob("*.py")):
        module_parts = path.relative_to(ROOT).with_suffix("").parts
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path.relative_to(ROOT), alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module_parts[: len(module_parts) - node.level]
                    name = ".".join([*base, node.module] if node.module else base)
                else:
                    name = node.module
                yield path.relative_to(ROOT), name


def imports_of(package, forbidden):
    return sorted(
        f"{path}: {name}"
        for path, name in imported_modules(package)
        if name == forbidden or name.startswith(forbidden + ".")
    )


def test_the_domain_imports_nothing_from_the_snapshots_app():
    assert imports_of("bagtracker", "snapshots") == []


def test_the_apps_import_from_config_only_the_embedded_database_helper():
    # `manage.py embedded_db` (a development command of the domain app) drives the helper that the
    # local settings use; nothing else in the apps reaches up into the project's configuration.
    allowed = {"config.embedded_postgres", "config"}
    found = [
        f"{path}: {name}"
        for package in ("bagtracker", "snapshots")
        for path, name in imported_modules(package)
        if (name == "config" or name.startswith("config.")) and name not in allowed
    ]
    assert found == []


def test_the_check_sees_an_import_of_the_upper_app(tmp_path, monkeypatch):
    # The test above would pass vacuously if the walk found nothing: it must see a planted import.
    package = tmp_path / "domain"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "m.py").write_text("def f():\n    from snapshots.services import ledger\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert imports_of("domain", "snapshots") == ["domain/sub/m.py: snapshots.services"]
