-- Second opinion for the health scripts: runs one under the reference Lua 5.1
-- interpreter (Debian's lua5.1) with the same environment Argo CD gives a
-- script from argocd-cm: the base library, `table`, the global `obj`, and no
-- string/math/io/os/debug libraries (strings lose their methods too).
--
--   lua5.1 lua51_runner.lua SCRIPT.lua OBJECT.lua
--
-- OBJECT.lua is a chunk that returns the resource as a table (the Python test
-- writes it from the YAML fixture). Prints the returned table as JSON; on a Lua
-- error prints "error: ..." to stderr and exits 1.

local script_path, object_path = arg[1], arg[2]
local obj = assert(dofile(object_path))

local env = {}
for _, name in ipairs({
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber",
  "tostring", "type", "unpack", "xpcall",
}) do
  env[name] = _G[name]
end
env.table = {
  concat = table.concat, insert = table.insert, maxn = table.maxn,
  remove = table.remove, sort = table.sort, getn = table.getn,
}
env._G = env
env.obj = obj

local chunk = assert(loadfile(script_path))
setfenv(chunk, env)

-- Without the string library, gopher-lua's strings have no metatable __index.
local string_mt = getmetatable("")
local string_index = string_mt.__index
string_mt.__index = nil
local ok, result = pcall(chunk)
string_mt.__index = string_index

if not ok then
  io.stderr:write("error: " .. tostring(result) .. "\n")
  os.exit(1)
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode(v)
  local t = type(v)
  if t == "nil" then
    return "null"
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "number" then
    return string.format("%.17g", v)
  elseif t == "string" then
    return quote(v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then
        error("cannot encode a non-string key: " .. tostring(k))
      end
      table.insert(keys, k)
    end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      table.insert(parts, quote(k) .. ":" .. encode(v[k]))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. t)
end

io.write(encode(result), "\n")
