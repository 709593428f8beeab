-- wrk script: POST the AdmissionReview in $BENCH_BODY_FILE as the apiserver does,
-- or, with $BENCH_BODIES ("PATH=FILE;PATH=FILE..."), each of those in turn.
local headers = { ["Content-Type"] = "application/json", ["Accept-Encoding"] = "gzip" }
local bodies = os.getenv("BENCH_BODIES")
if bodies ~= nil and bodies ~= "" then
  local requests = {}
  local i = 0
  -- In init, not at load: only then does wrk know the Host header the requests need.
  init = function()
    for entry in string.gmatch(bodies, "[^;]+") do
      local path, file = entry:match("^(.-)=([^=]+)$")
      local f = assert(io.open(file, "rb"))
      table.insert(requests, wrk.format("POST", path, { ["Content-Type"] = headers["Content-Type"], ["Accept-Encoding"] = headers["Accept-Encoding"] }, f:read("*a")))
      f:close()
    end
  end
  request = function()
    i = i % #requests + 1
    return requests[i]
  end
else
  local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  for k, v in pairs(headers) do wrk.headers[k] = v end
end
