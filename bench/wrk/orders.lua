-- A crowd of buyers placing one-item orders, for wrk (README: Load runs).
--
--   wrk -t2 -c16 -d10s -s bench/wrk/orders.lua http://127.0.0.1:8080/api/v1/orders -- TOKENS PRODUCTS [QUANTITY]
--
-- TOKENS   a file of bearer tokens, one a line (jangteo-admin load-buyers N --tokens FILE):
--          each request is sent by a buyer picked at random from it
-- PRODUCTS one product id ("301": a crowd on one product) or a range ("301-1300": a crowd
--          over many products, each request picks one at random)
-- QUANTITY units per order (default 1)
--
-- Every answer is tallied by status, and a problem+json answer also by its `code`. An answer
-- counts as an order only when it is a 201 whose body is a PAID order; anything else, and a
-- 201 of another shape, is reported apart (as ../shared/bench/limits counts only the right
-- bytes). done() prints the tallies, then one line for scripts (scripts/jangteo bench):
--   JANGTEO-WRK duration_us=N ... good=N bad_shape=N s201=N s409=N c409_OUT_OF_STOCK=N ... p50_ms=X ...

local SHIP = '"shipping":{"recipient":"홍길동","phone":"010-1234-5678",'
    .. '"zipCode":"06236","address":"서울 강남구 테헤란로 1"}'

local tokens, first, last, quantity
local threads = {}

-- Per thread: counts by key (good, bad_shape, s<status>, c<status>_<code>), and the same as
-- text in a global, which done() reads from every thread with thread:get. (wrk 4.2 copies
-- strings and numbers between threads safely, a table not: its copy pops one value too many.)
local tally = { good = 0, bad_shape = 0 }
tally_text = ""

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  local path, range = args[1], args[2]
  if not path or not range then
    error("usage: wrk ... -s orders.lua URL -- TOKENS_FILE PRODUCT|FIRST-LAST [QUANTITY]")
  end
  tokens = {}
  for line in io.lines(path) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  if #tokens == 0 then error("no tokens in " .. path) end
  local a, b = string.match(range, "^(%d+)-(%d+)$")
  if not a then a = string.match(range, "^(%d+)$"); b = a end
  if not a or tonumber(b) < tonumber(a) then
    error("PRODUCTS must be an id or FIRST-LAST, not " .. range)
  end
  first, last = tonumber(a), tonumber(b)
  quantity = tonumber(args[3] or "1")
  math.randomseed(os.time() * 100 + (thread_no or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local pid = first == last and first or math.random(first, last)
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(1, #tokens)]
  local body = '{"items":[{"productId":' .. pid .. ',"quantity":' .. quantity .. '}],' .. SHIP .. '}'
  return wrk.format(nil, nil, nil, body)
end

local function count(key)
  tally[key] = (tally[key] or 0) + 1
end

function response(status, headers, body)
  count("s" .. status)
  if status == 201 then
    count(string.find(body, '^{"orderId":%d+,"status":"PAID",') and "good" or "bad_shape")
  else
    count("c" .. status .. "_" .. (string.match(body, '"code":"([%w_]+)"') or "-"))
  end
  local t = {}
  for k, v in pairs(tally) do t[#t + 1] = k .. "=" .. v end
  tally_text = table.concat(t, " ")
end

local function sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k, function(x, y) return tostring(x) < tostring(y) end)
  return k
end

function done(summary, latency, requests)
  local all = { good = 0, bad_shape = 0 }
  for _, t in ipairs(threads) do
    for k, v in string.gmatch(t:get("tally_text") or "", "(%S+)=(%d+)") do
      all[k] = (all[k] or 0) + tonumber(v)
    end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local pct = { 50, 75, 90, 99, 99.9 }
  local ms = {}
  for i, p in ipairs(pct) do ms[i] = latency:percentile(p) / 1000 end

  local by, codes, keys = {}, {}, sorted_keys(all)
  for _, k in ipairs(keys) do
    if k:sub(1, 1) == "s" and k ~= "good" then by[#by + 1] = k:sub(2) .. "=" .. all[k] end
    if k:sub(1, 1) == "c" then codes[#codes + 1] = k:sub(2):gsub("_", " ", 1) .. "=" .. all[k] end
  end
  io.write(string.format("orders.lua: %d orders (201 PAID) in %.2f s = %.1f orders/s;"
      .. " latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms (every answer)\n",
      all.good, secs, all.good / secs, ms[1], ms[3], ms[4]))
  io.write("orders.lua: answers by status: " .. table.concat(by, " ")
      .. (#codes > 0 and ("; not 201, by code: " .. table.concat(codes, ", ")) or "")
      .. (all.bad_shape > 0 and ("; 201 that is no PAID order: " .. all.bad_shape) or "") .. "\n")
  io.write(string.format("orders.lua: socket errors: connect %d, read %d, write %d, timeout %d\n",
      e.connect, e.read, e.write, e.timeout))

  local line = { "JANGTEO-WRK", "duration_us=" .. summary.duration, "requests=" .. summary.requests,
                 "err_connect=" .. e.connect, "err_read=" .. e.read, "err_write=" .. e.write,
                 "err_timeout=" .. e.timeout }
  for _, k in ipairs(keys) do line[#line + 1] = k .. "=" .. all[k] end
  for i, p in ipairs(pct) do line[#line + 1] = string.format("p%s_ms=%.3f", p, ms[i]) end
  io.write(table.concat(line, " ") .. "\n")
end
