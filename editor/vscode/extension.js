// The VS Code side of the Mesh language: starts mesh-lsp (path configurable) and connects
// it to every .mesh document through vscode-languageclient. Colours come from the
// TextMate grammar contributed in package.json; everything else comes from the server.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function createClient() {
  const config = vscode.workspace.getConfiguration('mesh');
  const command = config.get('server.path') || 'mesh-lsp';
  const args = config.get('server.args') || [];
  const executable = { command, args, transport: TransportKind.stdio };
  const catalogUrl = config.get('catalogUrl');
  return new LanguageClient(
    'mesh',
    'Mesh language server',
    { run: executable, debug: executable },
    {
      documentSelector: [{ scheme: 'file', language: 'mesh' }],
      initializationOptions: {
        debounceMs: config.get('server.debounceMs'),
        ...(catalogUrl ? { catalogUrl } : {}),
      },
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher('**/*.mesh'),
      },
    },
  );
}

async function restart() {
  if (client) {
    await client.stop();
  }
  client = createClient();
  await client.start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('mesh.restartServer', restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('mesh')) {
        restart().catch((err) => vscode.window.showErrorMessage(`mesh-lsp: ${err.message}`));
      }
    }),
  );
  try {
    await restart();
  } catch (err) {
    vscode.window.showErrorMessage(
      `Could not start the Mesh language server (${err.message}). Set "mesh.server.path" to the mesh-lsp binary.`,
    );
  }
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
