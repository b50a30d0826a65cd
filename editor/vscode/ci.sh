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
unzip -l mesh-lang.vsix | grep -q 'extension/syntaxes/mesh.tmLanguage.json'
echo "packaged $(pwd)/mesh-lang.vsix"
