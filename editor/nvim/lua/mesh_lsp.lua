-- Attaches mesh-lsp to every buffer of filetype `mesh` through Neovim's built-in LSP
-- client. Works on Neovim 0.7 (start_client) and later (vim.lsp.start).
--
--   require("mesh_lsp").setup({
--     cmd = { "mesh-lsp" },          -- or { "meshc", "lsp" }
--     init_options = { debounceMs = 15 },
--   })
local M = {}

-- The folder a file belongs to: the nearest ancestor holding `.git`, else its directory.
local function root_of(file)
  local dir = vim.fn.fnamemodify(file, ":p:h")
  local git = vim.fn.finddir(".git", dir .. ";")
  if git ~= "" then
    return vim.fn.fnamemodify(git, ":p:h:h")
  end
  return dir
end

local clients = {}

function M.setup(opts)
  opts = opts or {}
  local group = vim.api.nvim_create_augroup("mesh_lsp", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = "mesh",
    callback = function(args)
      local file = vim.api.nvim_buf_get_name(args.buf)
      local root = (opts.root_dir and opts.root_dir(file)) or root_of(file)
      local config = {
        name = "mesh-lsp",
        cmd = opts.cmd or { "mesh-lsp" },
        root_dir = root,
        workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
        init_options = opts.init_options,
        on_attach = opts.on_attach,
      }
      if vim.lsp.start then
        vim.lsp.start(config, { bufnr = args.buf })
        return
      end
      local id = clients[root]
      if not id or not vim.lsp.get_client_by_id(id) then
        id = vim.lsp.start_client(config)
        clients[root] = id
      end
      if id then
        vim.lsp.buf_attach_client(args.buf, id)
      end
    end,
  })
end

return M
