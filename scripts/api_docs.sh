#!/usr/bin/env bash
# The API reference, generated from the docstrings by pdoc (requirements-dev.txt) into docs/api/
# (gitignored: it is rebuilt from the code, so it cannot drift from it). Fails on any warning
# pdoc gives (a module that does not import, a docstring it cannot render).
# Usage: bash scripts/api_docs.sh [output directory, default docs/api]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUTPUT=${1:-docs/api}
rm -rf "$OUTPUT"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# tfbet.beam_evaluation needs the optional Beam extra; without it pdoc leaves it out.
EXCLUDE=()
"$PYTHON" -c "import apache_beam" 2>/dev/null || EXCLUDE=("!tfbet.beam_evaluation")
# (pdoc is given every module itself: tfbet/__init__.py imports none of them)
# The names tfbet re-exports load on first use (tfbet/__init__.py): resolve them first, so that
# pdoc finds them in the module.
STATUS=0
TF_CPP_MIN_LOG_LEVEL=2 "$PYTHON" - "$OUTPUT" "${EXCLUDE[@]}" 2> "$LOG" <<'PYTHON' || STATUS=$?
import pkgutil
import sys
import warnings
import pdoc
import tfbet
for name in tfbet.__all__:
  getattr(tfbet, name)
# Every public module, not only those in tfbet.__all__ (tfbet.cli, tfbet.files, ...).
modules = ["tfbet"] + [m.name for m in pkgutil.walk_packages(tfbet.__path__, "tfbet.")
                       if "!" + m.name not in sys.argv[2:] and "._" not in m.name]
# pdoc adds a package's submodules itself; naming them too is fine (one page each).
warnings.filterwarnings("ignore", message=r"The module specification .* has already been added")
pdoc.render.configure(docformat="google", show_source=False)
pdoc.pdoc(*modules, output_directory=pdoc.Path(sys.argv[1]))
PYTHON
NOISE="^WARNING: All log messages before absl\|^[IW][0-9]\{4\} \|^To enable the following"
if [ "$STATUS" -ne 0 ] || grep -v "$NOISE" "$LOG" | grep -qi "warn\|error\|traceback"; then
  cat "$LOG"; echo "api_docs: pdoc warned (above)"; exit 1
fi
echo "api_docs: $(find "$OUTPUT" -name '*.html' | wc -l) pages in $OUTPUT/"
