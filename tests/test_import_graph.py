"""The modules of tfbet import each other without a circle (read from the source, not run)."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfbet"


def module_name(path):
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
  """{module: set of tfbet modules it imports}, top-level and function-level imports alike."""
  modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # "from tfbet import chips" imports tfbet.chips; "from tfbet.chips import X" tfbet.chips.
        candidates = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                      else node.module for alias in node.names]
      else:
        continue
      targets.update(c for c in candidates if c in modules and c != name and c != "tfbet")
    graph[name] = targets
  return graph


def find_cycle(graph):
  """One import circle as a list of modules, or None."""
  state = {}

  def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for target in sorted(graph[node]):
      if state.get(target) == "open":
        return stack[stack.index(target):] + [target]
      if target not in state:
        cycle = visit(target, stack)
        if cycle:
          return cycle
    state[node] = "done"
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node, [])
      if cycle:
        return cycle
  return None


def test_find_cycle_finds_a_circle_and_accepts_a_tree():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_tfbet_modules_import_each_other_without_a_circle():
  graph = import_graph()
  assert "tfbet.chip_models" in graph["tfbet.chips"]  # the graph sees imports
  assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_module_imports_a_binarys_module_only_launch_starts_them_by_name():
  from tfbet.cli import launch  # pylint: disable=g-import-not-at-top
  graph = import_graph()
  binaries = set(launch.BINARIES.values())
  assert binaries <= set(graph)  # every binary is a module of tfbet
  assert "tfbet.cli.model_flags" in graph["tfbet.cli.eval"]  # shared modules are seen
  importers = {module: sorted(graph[module] & binaries) for module in graph
               if graph[module] & binaries}
  assert importers == {}


def test_the_design_document_names_every_module_of_the_package():
  design = (PACKAGE.parent / "docs" / "design.md").read_text(encoding="utf-8")
  binaries = design[design.index("The binaries (`tfbet/cli/`)"):]
  missing = []
  for path in sorted(PACKAGE.rglob("*.py")):
    relative = path.relative_to(PACKAGE.parent).as_posix()
    if relative.startswith("tfbet/models/"):
      continue  # one row, `tfbet/models/`
    listed = f"`{relative}`" in design
    if not listed and path.parent.name == "cli":  # a binary: named in the list of binaries
      listed = f"`{path.stem}`" in binaries.split("\n\n")[0]
    if not listed:
      missing.append(relative)
  assert not missing, f"docs/design.md §2 has no row for {missing}"
