-- Cart checkouts beside direct orders of the same two lines, for wrk (bench/cart.pl).
--
--   wrk -t2 -c16 -d10s -s bench/wrk/cart.lua http://127.0.0.1:8080 -- BUYERS MODE THREADS
--
-- BUYERS  a file of "USER_ID TOKEN PRODUCT_A PRODUCT_B" lines, one buyer each; thread k of
--         THREADS sends as buyers k, k + THREADS, k + 2 THREADS, ...: one request, one buyer,
--         so every checkout finds its cart as it was filled (a run that used them all would
--         reuse the last one, whose empty cart then shows as answers that are no order)
-- MODE    order: POST /api/v1/orders {"items":[PRODUCT_A, PRODUCT_B]}
--         cart:  POST /api/v1/users/USER_ID/cart/checkout (the cart holds the same two lines)
--
-- Counting every answer, checking that a 201 is a PAID order, and the JANGTEO-WRK line that
-- Jangteo::Bench reads are orders.lua's, loaded from beside this file: only what is sent
-- differs.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "orders.lua")

local SHIP = '"shipping":{"recipient":"홍길동","phone":"010-1234-5678",'
    .. '"zipCode":"06236","address":"서울 강남구 테헤란로 1"}'
local buyers, mode, nthreads, sent = {}, nil, 1, 0

function init(args)
  local path
  path, mode, nthreads = args[1], args[2], tonumber(args[3] or "")
  if not path or (mode ~= "order" and mode ~= "cart") or not nthreads then
    error("usage: wrk ... -s cart.lua URL -- BUYERS order|cart THREADS")
  end
  for line in io.lines(path) do
    local uid, token, a, b = string.match(line, "^(%d+) (%S+) (%d+) (%d+)$")
    if uid then buyers[#buyers + 1] = { uid = uid, token = token, a = a, b = b } end
  end
  if #buyers == 0 then error("no buyers in " .. path) end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local i = thread_no + sent * nthreads
  sent = sent + 1
  if i > #buyers then i = #buyers end
  local b = buyers[i]
  wrk.headers["Authorization"] = "Bearer " .. b.token
  if mode == "cart" then
    return wrk.format(nil, "/api/v1/users/" .. b.uid .. "/cart/checkout", nil, "{" .. SHIP .. "}")
  end
  return wrk.format(nil, "/api/v1/orders", nil, '{"items":[{"productId":' .. b.a .. ',"quantity":1},'
      .. '{"productId":' .. b.b .. ',"quantity":1}],' .. SHIP .. "}")
end
