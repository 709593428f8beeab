-- inplace-gate: what both health scripts read of an in-place rollout, put in
-- front of each (Argo CD runs every script on its own).

-- A small JSON reader for the rollout-state annotation (Argo CD's Lua has no
-- JSON library). Strict enough to refuse what is not JSON; returns nil and a
-- reason instead of raising, so a bad annotation reads Degraded.
local function decodeJSON(text)
  local pos = 1
  local value
  local function fail(what) error({ msg = what .. " at byte " .. pos }, 0) end
  local function skip() pos = string.find(text, "[^ \t\r\n]", pos) or (#text + 1) end
  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = string.sub(text, i, i)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = string.sub(text, i + 1, i + 1)
        if e == "u" then
          local hex = string.sub(text, i + 2, i + 5)
          if not string.find(hex, "^%x%x%x%x$") then fail("bad \\u escape") end
          local n = tonumber(hex, 16)
          -- Only what the annotation can hold needs to read right; other code points become '?'.
          out[#out + 1] = n < 128 and string.char(n) or "?"
          i = i + 6
        elseif escapes[e] then
          out[#out + 1] = escapes[e]; i = i + 2
        else
          fail("bad escape")
        end
      else
        out[#out + 1] = c; i = i + 1
      end
    end
  end
  function value()
    skip()
    local c = string.sub(text, pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1; skip()
      if string.sub(text, pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        skip()
        if string.sub(text, pos, pos) ~= '"' then fail("expected a key") end
        local k = str(); skip()
        if string.sub(text, pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value(); skip()
        local d = string.sub(text, pos, pos); pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1; skip()
      if string.sub(text, pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value(); skip()
        local d = string.sub(text, pos, pos); pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    end
    if string.sub(text, pos, pos + 3) == "true" then pos = pos + 4; return true end
    if string.sub(text, pos, pos + 4) == "false" then pos = pos + 5; return false end
    if string.sub(text, pos, pos + 3) == "null" then pos = pos + 4; return nil end
    local s, e = string.find(text, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if s == nil then fail("unexpected character") end
    pos = e + 1
    return tonumber(string.sub(text, s, e)) or fail("bad number")
  end
  local ok, result = pcall(function()
    local v = value(); skip()
    if pos <= #text then fail("trailing characters") end
    return v
  end)
  if ok then return result, nil end
  if type(result) == "table" then return nil, result.msg end
  return nil, tostring(result)
end

-- The in-place rollout recorded on the workload, or nil; a second value says why it is unreadable.
local function inplaceRollout(o)
  local raw = o.metadata and o.metadata.annotations and o.metadata.annotations["inplace-gate.dev/rollout-state"]
  if raw == nil or raw == "" then return nil, nil end
  local state, err = decodeJSON(raw)
  if err ~= nil then return nil, err end
  if type(state) ~= "table" or type(state.images) ~= "table" or type(state.startedAt) ~= "string" then
    return nil, "needs images and startedAt"
  end
  return state, nil
end

-- The inplace-gate.dev/partition annotation: ordinals (StatefulSet) or pods kept on the old images.
local function partitionAnnotation(o)
  local raw = o.metadata and o.metadata.annotations and o.metadata.annotations["inplace-gate.dev/partition"]
  if raw ~= nil and string.find(raw, "^%d+$") then return tonumber(raw) end
  return 0
end

local function describeImages(images)
  local names = {}
  for name, _ in pairs(images) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. tostring(images[name]) end
  return table.concat(parts, ", ")
end

-- Degraded for an unreadable or stalled in-place rollout, else nil; then the rollout, if any.
local function inplaceTrouble(o)
  local rollout, unreadable = inplaceRollout(o)
  if unreadable ~= nil then
    return { status = "Degraded", message = "inplace-gate.dev/rollout-state is unreadable (" .. unreadable .. ")" }, nil
  end
  if rollout ~= nil and type(rollout.stalled) == "string" and rollout.stalled ~= "" then
    return { status = "Degraded", message = "In-place rollout stalled: " .. rollout.stalled .. " did not come back (see its events); change the image again to go on" }, rollout
  end
  return nil, rollout
end
