" .mesh files are mesh policy files.
autocmd BufRead,BufNewFile *.mesh setfiletype mesh
