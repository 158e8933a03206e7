-- regis last-writer-wins apply. One call applies many commands; the rules are
-- documented in lww.rs (and docs/lww.md), and model.rs is their reference.
--
-- KEYS[3i-2] = data key K of command i, KEYS[3i-1] = its bookkeeping hash M,
-- KEYS[3i] = its aside key A (expired data a late extension may revive).
-- ARGV[1] = the applier's clock (epoch ms), ARGV[2] = tombstone horizon (ms),
-- ARGV[3] = aside window (ms), then per command: op, version
-- (Version::sortable), then by op:
--   S value expiry | D | H expiry n f1 v1 .. fn vn | T expiry n m1 .. mn
--   Z expiry n s1 m1 .. sn mn | h n f1 v1 .. | d n f1 .. | a n m1 .. | r n m1 ..
--   z n s1 m1 .. | y n m1 .. | p at | q
-- (expiry is '' for none). Returns one character per command:
-- '0' applied (wholly or in part), '1' superseded (older or equal version),
-- '2' skipped for a type conflict.
--
-- Versions are fixed-width lowercase hex, so string order is version order.
-- A position in version order where an incarnation of the key ended by
-- expiry (a "cut") is a string too: a write at version w is before cut c iff
-- w < c. The cut of an expiry x set at version p is the version
-- (x, 0, 0) when x is after p's time (every write stamped before x belongs
-- to the incarnation that expires), or p .. 'g' when x is not after p's
-- time (the expiry fires right after p: 24 hex digits and a 'g' sort after
-- p and before every later version). '' is the cut before everything.
local call = redis.call
local horizon = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
-- The clock expiries are judged by: the applier's, or Redis's own when that
-- is later (Redis expires K by its own clock, so data whose expiry Redis's
-- clock has passed must go aside, not into K).
local clock = tonumber(ARGV[1])
do
  local t = call('TIME')
  local redis_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if redis_ms > clock then clock = redis_ms end
end
local CHUNK = 1000 -- arguments per variadic call (Lua's unpack limit is ~8000)
local CHAIN_MAX = 16 -- expiry writes kept per key (the bound documented in lww.rs)
local TYPE = { S = 'string', H = 'hash', h = 'hash', d = 'hash', T = 'set', a = 'set', r = 'set',
  Z = 'zset', z = 'zset', y = 'zset' }
local PAIRS = { H = true, Z = true, h = true, z = true }
local ADD = { H = 'HSET', T = 'SADD', Z = 'ZADD', h = 'HSET', d = 'HDEL', a = 'SADD', r = 'SREM', z = 'ZADD', y = 'ZREM' }
local LIST = { hash = 'HKEYS', set = 'SMEMBERS' }
local REM = { hash = 'HDEL', set = 'SREM', zset = 'ZREM', h = 'HDEL', a = 'SREM', z = 'ZREM' }
local PUT = { hash = 'HSET', set = 'SADD', zset = 'ZADD' }
local WHOLE = { S = true, D = true, H = true, T = true, Z = true }
local ADDS = { h = true, a = true, z = true }

local function variadic(cmd, key, list, step)
  local n = #list
  local i = 1
  while i <= n do
    local j = i + CHUNK * step - 1
    if j > n then j = n end
    call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end

local function ms(n) return string.format('%.0f', n) end

-- The wall-clock milliseconds of a version.
local function vtime(v) return tonumber(string.sub(v, 1, 12), 16) end

-- The cut of expiry x (a number) set at version p.
local function cut(p, x)
  if x > vtime(p) then return string.format('%012x', x) .. '000000000000' end
  return p .. 'g'
end

-- A cut that no write can move back: an expiry that fired at once (nothing
-- is written between p and p..'g'), or the frozen cut `y` of expiry writes
-- dropped from the chain. Data before such a cut is not kept aside.
local function final(z, y) return z == '' or #z > 24 or z == y end

-- Elements of an existing collection.
local function elements(K, t)
  if t == 'zset' then return call('ZRANGE', K, 0, -1) end
  return call(LIST[t], K)
end

-- ARGV[i..j] as a new table (unpack would overflow the C stack for long lists).
local function slice(i, j)
  local t = {}
  for p = i, j do t[#t + 1] = ARGV[p] end
  return t
end

-- The chain: the key's expiry writes since its newest whole-key write
-- (that write first, with its own expiry), oldest first, as two arrays of
-- versions and expiries ('' for none). The newest is the register (e, x);
-- the ones before it are M's fields c1, c2, .. as "version:expiry" (one
-- field each, so that M keeps Redis's compact encoding).
local CHAIN_FIELDS = {}
for n = 1, CHAIN_MAX - 1 do CHAIN_FIELDS[n] = 'c' .. n end

local function chain_of(cs, first, e, x)
  local cv, cx = {}, {}
  if cs then
    for n = 1, CHAIN_MAX - 1 do
      local entry = cs[first + n - 1]
      if not entry then break end
      local sep = string.find(entry, ':', 1, true)
      cv[n] = string.sub(entry, 1, sep - 1); cx[n] = string.sub(entry, sep + 1)
    end
  end
  if e then cv[#cv + 1] = e; cx[#cx + 1] = x or '' end
  return cv, cx
end

-- Adds to `set` and `del` (field/value lists for HSET, fields for HDEL)
-- what stores the chain, `had` being how many c fields M held.
local function chain_store(cv, cx, had, set, del)
  set[#set + 1] = 'e'; set[#set + 1] = cv[#cv]
  set[#set + 1] = 'x'; set[#set + 1] = cx[#cx]
  for n = 1, #cv - 1 do
    set[#set + 1] = CHAIN_FIELDS[n]; set[#set + 1] = cv[n] .. ':' .. cx[n]
  end
  for n = #cv, had do del[#del + 1] = CHAIN_FIELDS[n] end
end

-- Inserts (v, x) in version order; false when v is already there.
local function chain_insert(cv, cx, v, x)
  local i = #cv
  while i >= 1 and cv[i] > v do i = i - 1 end
  if i >= 1 and cv[i] == v then return false end
  table.insert(cv, i + 1, v); table.insert(cx, i + 1, x)
  return true
end

-- Keeps the CHAIN_MAX newest entries; the cut of a dropped entry whose
-- expiry fired before the next one is folded into the frozen cut y.
local function chain_trim(cv, cx, y)
  while #cv > CHAIN_MAX do
    local x = cx[1]
    if x ~= '' and tonumber(x) <= vtime(cv[2]) then
      local c = cut(cv[1], tonumber(x))
      if c > y then y = c end
    end
    table.remove(cv, 1); table.remove(cx, 1)
  end
  return y
end

-- The key's dead cut: the latest cut of an expiry that fired, that is whose
-- time came before the next expiry write was stamped (or before `now`, for
-- the newest). Data written before it is expired.
local function dead_cut(cv, cx, y, now)
  local z = y
  local n = #cv
  for i = 1, n do
    local x = cx[i]
    if x ~= '' then
      x = tonumber(x)
      local next_time = now
      if i < n then next_time = vtime(cv[i + 1]) end
      if x <= next_time then
        local c = cut(cv[i], x)
        if c > z then z = c end
      end
    end
  end
  return z
end

-- Element versions from an HGETALL of M: element -> version.
local function element_versions(all)
  local fv = {}
  for j = 1, #all, 2 do
    local f = all[j]
    if string.byte(f, 1) == 102 then fv[string.sub(f, 2)] = all[j + 1] end
  end
  return fv
end

-- Moves data between K and A so that A holds exactly what was written
-- before cut `to` (it held what was written before `from`). A position is
-- an element's own version, or k for content of the whole-key write. Data
-- that becomes expired behind a final cut is dropped, not kept aside.
local function settle(K, A, from, to, k, fv, y)
  if from == to then return end
  local src, dst, lo, hi = K, A, from, to
  if to < from then src, dst, lo, hi = A, K, to, from end
  local keep = dst == K or not final(to, y)
  local ty = call('TYPE', src).ok
  if ty == 'none' then return end
  local function moves(p) return p ~= nil and p >= lo and p < hi end
  if ty == 'string' then
    if moves(k) then
      if keep then call('RENAME', src, dst) else call('DEL', src) end
    end
    return
  end
  local all, names, pairs_, step
  if ty == 'hash' then
    all = call('HGETALL', src); step = 2
  elseif ty == 'zset' then
    all = call('ZRANGE', src, 0, -1, 'WITHSCORES'); step = 2
  else
    all = call('SMEMBERS', src); step = 1
  end
  names, pairs_ = {}, {}
  for j = 1, #all, step do
    local e = all[j]
    if moves(fv[e] or k) then
      names[#names + 1] = e
      if ty == 'hash' then
        pairs_[#pairs_ + 1] = e; pairs_[#pairs_ + 1] = all[j + 1]
      elseif ty == 'zset' then
        pairs_[#pairs_ + 1] = all[j + 1]; pairs_[#pairs_ + 1] = e
      else
        pairs_[#pairs_ + 1] = e
      end
    end
  end
  if #names == 0 then return end
  if #names * step == #all then
    if not keep then call('DEL', src); return end
    if call('EXISTS', dst) == 0 then call('RENAME', src, dst); return end
  end
  if keep then variadic(PUT[ty], dst, pairs_, step) end
  variadic(REM[ty], src, names, 1)
end

-- Plain SETs (no expiry) are collected and written with one MSET: fewer
-- calls into Redis, which is what a script spends most of its time on. A
-- pending key is written out before any later command of the call reads it.
local pending, pending_keys = {}, {}
local function flush()
  local n = #pending
  local i = 1
  while i <= n do
    local j = i + 2 * CHUNK - 1
    if j > n then j = n end
    call('MSET', unpack(pending, i, j))
    i = j + 1
  end
  pending, pending_keys = {}, {}
end

-- K's expiry is the register (the newest expiry write, `rx`) unless that
-- has passed: what K holds then was written after it, on a fresh key.
-- `kexists` is what is known of K (true, false, or nil); returns it, known
-- better.
local function ttl(K, rx, now, kexists)
  if kexists == false then return false end
  if rx ~= '' and tonumber(rx) > now then
    local r = call('PEXPIREAT', K, rx)
    if kexists == nil then kexists = r == 1 end
  else
    call('PERSIST', K)
  end
  return kexists
end

-- The type the key holds in K, and in K or else aside.
local function key_type(K, A, aside)
  local cur = call('TYPE', K).ok
  if cur == 'none' and aside then return cur, call('TYPE', A).ok end
  return cur, cur
end

local out = {}
local a = 4
local ncmd = #KEYS / 3
local function run()
for i = 1, ncmd do
  local K, M, A = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if pending_keys[K] then flush() end
  local op, v = ARGV[a], ARGV[a + 1]
  a = a + 2
  local exp, items = nil, nil
  if op == 'S' then
    items = ARGV[a]; exp = ARGV[a + 1]; a = a + 2
  elseif op == 'H' or op == 'T' or op == 'Z' then
    exp = ARGV[a]
    local n = tonumber(ARGV[a + 1]) * (PAIRS[op] and 2 or 1)
    items = slice(a + 2, a + 1 + n)
    a = a + 2 + n
  elseif op == 'p' then
    exp = ARGV[a]; a = a + 1
  elseif op ~= 'D' and op ~= 'q' then
    local n = tonumber(ARGV[a]) * (PAIRS[op] and 2 or 1)
    items = slice(a + 1, a + n)
    a = a + 1 + n
  end
  exp = exp or ''
  -- A write is never judged by a clock earlier than its own version.
  local now = clock
  local vt = vtime(v)
  if vt > now then now = vt end

  local whole = WHOLE[op]
  local mk, me, mx, mz, my, all, cs, first
  local fresh_m = false
  if whole then
    -- One read gives the key-level fields and any element versions.
    all = call('HGETALL', M)
    fresh_m = #all == 0
    for j = 1, #all, 2 do
      local f = all[j]
      if f == 'k' then mk = all[j + 1] elseif f == 'e' then me = all[j + 1]
      elseif f == 'x' then mx = all[j + 1] elseif f == 'z' then mz = all[j + 1]
      elseif f == 'y' then my = all[j + 1]
      elseif string.byte(f, 1) == 99 then
        cs = cs or {}
        cs[tonumber(string.sub(f, 2))] = all[j + 1]
      end
    end
    first = 1
  else
    cs = call('HMGET', M, 'k', 'e', 'x', 'z', 'y', unpack(CHAIN_FIELDS))
    mk, me, mx, mz, my = cs[1], cs[2], cs[3], cs[4], cs[5]
    first = 6
  end
  local zold, y = mz or '', my or ''
  local znew = zold
  local cv, cx, had
  if cs == nil and whole then
    -- A whole-key write needs only the entries newer than itself: at most
    -- the register, when M holds no older entries.
    had = 0
  else
    cv, cx = chain_of(cs, first, me, mx)
    had = #cv - 1
  end
  local fv = nil
  -- A may hold something only while some data is expired.
  local aside = zold ~= ''
  local code = '0'
  local wrote = false
  local wrote_aside = false
  local kexists = nil -- K after the command: true, false, or nil (unknown)

  if mk and v <= mk then
    code = '1'
  elseif whole then
    -- Whole-key write at v: replaces every element whose version is <= v.
    local want = TYPE[op]
    fv = element_versions(all)
    local newer = nil
    if next(fv) ~= nil or aside then
      local _, cur = key_type(K, A, aside)
      local changing = cur ~= 'none' and want ~= nil and cur ~= want
      local stale = {}
      for e, f in pairs(fv) do
        if f > v and not changing then
          newer = newer or {}
          newer[e] = true
        else
          stale[#stale + 1] = 'f' .. e
          fv[e] = nil
        end
      end
      if #stale > 0 then variadic('HDEL', M, stale, 1) end
      -- Content older than v goes, in K and aside.
      local keys = { K }
      if aside then keys[2] = A end
      for _, key in ipairs(keys) do
        local t = call('TYPE', key).ok
        if t ~= 'none' then
          if newer == nil or t == 'string' or changing then
            call('DEL', key)
          else
            local gone = {}
            for _, e in ipairs(elements(key, t)) do
              if not newer[e] then gone[#gone + 1] = e end
            end
            if #gone > 0 then variadic(REM[t], key, gone, 1) end
          end
        end
      end
      if newer == nil then kexists = false end
    elseif op ~= 'S' then
      call('DEL', K)
      kexists = false
    end
    -- The chain restarts at v (expiry writes newer than v stay).
    if cv == nil then
      if me and me > v then cv, cx = { v, me }, { exp, mx } else cv, cx = { v }, { exp } end
    else
      local nv, nx = { v }, { exp }
      for j = 1, #cv do
        if cv[j] > v then nv[#nv + 1] = cv[j]; nx[#nx + 1] = cx[j] end
      end
      cv, cx = nv, nx
    end
    if #cv > CHAIN_MAX then
      -- Older than every expiry write the full chain keeps: its own expiry
      -- is beyond the bound, as an expiry write that old would be.
      table.remove(cv, 1); table.remove(cx, 1)
    end
    if y ~= '' and y <= v then y = '' end
    mk = v
    local to = dead_cut(cv, cx, y, now)
    if newer ~= nil and to ~= znew then
      if to > znew and not final(to, y) then wrote_aside = true end
      settle(K, A, znew, to, mk, fv, y)
    end
    znew = to
    -- Where the content at v goes: K, or aside when it is already expired.
    local target = K
    if v < znew then
      if final(znew, y) then target = nil else target = A end
    end
    -- Data first, bookkeeping after: if Redis refuses the data write (for
    -- its content), the version is not recorded and a retry fails the same
    -- way instead of being skipped as already applied.
    if op == 'S' then
      if target == K then
        local rx = cx[#cx]
        if rx ~= '' and tonumber(rx) > now then
          call('SET', K, items, 'PXAT', rx)
        else
          pending[#pending + 1] = K; pending[#pending + 1] = items
          pending_keys[K] = true
        end
        kexists = true
      else
        if kexists == nil then call('DEL', K); kexists = false end
        if target == A then
          call('SET', A, items)
          wrote_aside = true
        end
      end
    elseif items and #items > 0 and target ~= nil then
      local list = items
      if newer ~= nil then
        list = {}
        if op == 'T' then
          for j = 1, #items do
            if not newer[items[j]] then list[#list + 1] = items[j] end
          end
        else
          local mpos = (op == 'H') and 0 or 1 -- member position within a pair
          for j = 1, #items, 2 do
            if not newer[items[j + mpos]] then
              list[#list + 1] = items[j]; list[#list + 1] = items[j + 1]
            end
          end
        end
      end
      if #list > 0 then
        variadic(ADD[op], target, list, PAIRS[op] and 2 or 1)
        if target == K then kexists = true else wrote_aside = true end
      end
    end
    if op ~= 'S' or target ~= K then kexists = ttl(K, cx[#cx], now, kexists) end
    wrote = true
  elseif op == 'p' or op == 'q' then
    -- Expiry write at v: joins the chain (a late one can still end or
    -- revive an incarnation); it sets K's expiry iff it is the newest.
    if (#cv >= CHAIN_MAX and v < cv[1]) or not chain_insert(cv, cx, v, exp) then
      code = '1'
    else
      y = chain_trim(cv, cx, y)
      local to = dead_cut(cv, cx, y, now)
      if to ~= znew then
        if to > znew and not final(to, y) then wrote_aside = true end
        settle(K, A, znew, to, mk, element_versions(call('HGETALL', M)), y)
        znew = to
      end
      if cv[#cv] ~= v and znew == zold then code = '1' end
      kexists = ttl(K, cx[#cx], now, kexists)
      wrote = true
    end
  else
    -- Element write at v: applies to each element iff newer than its version.
    local kcur, cur = key_type(K, A, aside)
    if cur ~= 'none' and cur ~= TYPE[op] then
      code = '2'
    else
      local to = dead_cut(cv, cx, y, now)
      if to ~= znew then
        if to > znew and not final(to, y) then wrote_aside = true end
        settle(K, A, znew, to, mk, element_versions(call('HGETALL', M)), y)
        znew = to
        wrote = true
        kexists = ttl(K, cx[#cx] or '', now, kexists)
      end
      local step = PAIRS[op] and 2 or 1
      local mpos = (op == 'h') and 0 or ((op == 'z') and 1 or 0)
      local names = {}
      for j = 1, #items, step do names[#names + 1] = 'f' .. items[j + mpos] end
      local decided = {}
      local list, marks, bare = {}, {}, {}
      for c = 1, #names, CHUNK do
        local last = c + CHUNK - 1
        if last > #names then last = #names end
        local vs = call('HMGET', M, unpack(names, c, last))
        for j = c, last do
          local name = names[j]
          local ok = decided[name]
          if ok == nil then
            local f = vs[j - c + 1]
            ok = (not f) or v > f
            decided[name] = ok
            if ok then
              marks[#marks + 1] = name; marks[#marks + 1] = v
              bare[#bare + 1] = string.sub(name, 2)
            end
          end
          if ok then
            local p = (j - 1) * step + 1
            list[#list + 1] = items[p]
            if step == 2 then list[#list + 1] = items[p + 1] end
          end
        end
      end
      if #list == 0 then
        code = '1'
      else
        local target = K
        if v < znew then
          if final(znew, y) then target = nil else target = A end
        end
        local may_aside = aside or znew ~= ''
        if ADDS[op] then
          -- The element's previous value may be aside (older than the cut).
          if target == K and may_aside then variadic(REM[op], A, bare, 1) end
          if target ~= nil then variadic(ADD[op], target, list, step) end
          if target == K then
            kexists = true
            if kcur == 'none' or znew ~= zold then kexists = ttl(K, cx[#cx] or '', now, kexists) end
          elseif target == A then
            wrote_aside = true
          end
        else
          variadic(ADD[op], K, list, step)
          if may_aside then variadic(ADD[op], A, list, step) end
        end
        variadic('HSET', M, marks, 2)
        wrote = true
      end
    end
  end

  if wrote then
    -- Anything put aside lives `window` past now.
    if wrote_aside then call('PEXPIREAT', A, ms(now + window)) end
    -- Key-level bookkeeping: the whole-key version, the register, the
    -- chain, the frozen cut and the dead cut.
    if whole and #cv == 1 and had == 0 and y == '' and not my and znew == zold then
      -- The common case, in one call: a whole-key write and its own expiry.
      call('HSET', M, 'k', v, 'e', v, 'x', exp)
    else
    local set, del = {}, {}
    if whole then
      set[#set + 1] = 'k'; set[#set + 1] = v
    end
    if whole or op == 'p' or op == 'q' then
      chain_store(cv, cx, had, set, del)
      if y ~= '' then set[#set + 1] = 'y'; set[#set + 1] = y elseif my then del[#del + 1] = 'y' end
    end
    if znew ~= zold then
      if znew ~= '' then set[#set + 1] = 'z'; set[#set + 1] = znew else del[#del + 1] = 'z' end
    end
    if #set > 0 then call('HSET', M, unpack(set)) end
    if #del > 0 then call('HDEL', M, unpack(del)) end
    end
    -- Bookkeeping lives as long as the data, and at least `horizon` past
    -- the data's end (and past anything aside), so any message still in
    -- flight finds its versions.
    local rx = cx[#cx]
    local rx_live = rx ~= nil and rx ~= '' and tonumber(rx) > now
    if kexists == nil and not rx_live then kexists = call('EXISTS', K) == 1 end
    if kexists and not rx_live then
      -- A new M has no TTL to remove.
      if not fresh_m then call('PERSIST', M) end
    else
      local x = now
      if rx_live then x = tonumber(rx) end
      call('PEXPIREAT', M, ms(x + horizon))
    end
  end
  out[i] = code
end
end
-- If Redis refuses a command, the pending writes of the commands before it
-- (whose versions are already recorded) must still land before the error
-- is reported.
local ok, err = pcall(run)
flush()
if not ok then error(err) end
return table.concat(out)
