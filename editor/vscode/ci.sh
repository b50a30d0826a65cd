#!/usr/bin/env bash
# The VS Code extension in CI: install exactly what package-lock.json records, check the
# client script, run the grammar tests over the annotated fixtures in test/, and package
# the extension as a .vsix.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run check
npm test
npm run package
# The grammar must be inside the package.
python3 - <<'PY'
import sys, zipfile
names = zipfile.ZipFile("mesh-lang.vsix").namelist()
sys.exit(0 if "extension/syntaxes/mesh.tmLanguage.json" in names else "the grammar is not in mesh-lang.vsix")
PY
echo "packaged $(pwd)/mesh-lang.vsix"
