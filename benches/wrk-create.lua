-- wrk script: POST a new profile per request (server-generated ids), bearer token from $TOKEN.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"name":"bench","platform":"Windows","isSigned":true,"permissionsRequired":"user",' ..
           '"tags":["a","b"],"vendorInformation":{"provider":"p","vendor":"v"}}'

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  for s, n in pairs(statuses) do io.write(string.format("status %d: %d\n", s, n)) end
end
