-- regis last-writer-wins apply. One call applies many commands; the rules are
-- documented in lww.rs and mirrored by model.rs.
--
-- KEYS[2i-1] = data key K of command i, KEYS[2i] = its bookkeeping hash M.
-- ARGV[1] = the applier's clock (epoch ms), ARGV[2] = tombstone horizon (ms),
-- then per command: op, version (Version::sortable), then by op:
--   S value expiry | D | H expiry n f1 v1 .. fn vn | T expiry n m1 .. mn
--   Z expiry n s1 m1 .. sn mn | h n f1 v1 .. | d n f1 .. | a n m1 .. | r n m1 ..
--   z n s1 m1 .. | y n m1 .. | p at | q
-- (expiry is '' for none). Returns one character per command:
-- '0' applied (wholly or in part), '1' superseded (older or equal version),
-- '2' skipped for a type conflict.
-- Versions are fixed-width lowercase hex, so string order is version order.
local call = redis.call
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local CHUNK = 1000 -- arguments per variadic call (Lua's unpack limit is ~8000)
local TYPE = { S = 'string', H = 'hash', h = 'hash', d = 'hash', T = 'set', a = 'set', r = 'set',
  Z = 'zset', z = 'zset', y = 'zset' }
local PAIRS = { H = true, Z = true, h = true, z = true }
local ADD = { H = 'HSET', T = 'SADD', Z = 'ZADD', h = 'HSET', d = 'HDEL', a = 'SADD', r = 'SREM', z = 'ZADD', y = 'ZREM' }
local LIST = { hash = 'HKEYS', set = 'SMEMBERS' }
local REM = { hash = 'HDEL', set = 'SREM', zset = 'ZREM' }
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

local out = {}
local a = 3
local ncmd = #KEYS / 2
local function run()
for i = 1, ncmd do
  local K, M = KEYS[2 * i - 1], KEYS[2 * i]
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

  local whole = WHOLE[op]
  local mk, me, mx, all
  if whole then
    -- One read gives the key-level fields and any element versions.
    all = call('HGETALL', M)
    for j = 1, #all, 2 do
      local f = all[j]
      if f == 'k' then mk = all[j + 1] elseif f == 'e' then me = all[j + 1] elseif f == 'x' then mx = all[j + 1] end
    end
  else
    local m = call('HMGET', M, 'k', 'e', 'x')
    mk, me, mx = m[1], m[2], m[3]
  end
  local code = '0'
  if mk and v <= mk then
    code = '1'
  elseif whole then
    -- Whole-key write at v: replaces every element whose version is <= v.
    local want = TYPE[op]
    local fixed = (mk and 2 or 0) + (me and 2 or 0) + (mx and 2 or 0)
    local cur = nil
    local newer = nil
    if #all > fixed then
      cur = call('TYPE', K).ok
      local changing = cur ~= 'none' and want ~= nil and cur ~= want
      local stale = {}
      for j = 1, #all, 2 do
        local f = all[j]
        if string.byte(f, 1) == 102 then -- 'f': element version
          if all[j + 1] > v and not changing then
            newer = newer or {}
            newer[string.sub(f, 2)] = true
          else
            stale[#stale + 1] = f
          end
        end
      end
      if #stale > 0 then variadic('HDEL', M, stale, 1) end
      if changing then call('DEL', K); cur = 'none' end
    end
    if not me or v > me then me = v; mx = exp or '' end
    -- Data first, bookkeeping after: if Redis refuses the data write (for
    -- its content), the version is not recorded and a retry fails the same
    -- way instead of being skipped as already applied.
    if op == 'S' then
      if mx ~= '' then
        call('SET', K, items, 'PXAT', mx)
      else
        pending[#pending + 1] = K; pending[#pending + 1] = items
        pending_keys[K] = true
      end
    else
      if newer == nil then
        call('DEL', K)
      else
        if cur == nil then cur = call('TYPE', K).ok end
        if cur == 'string' then
          call('DEL', K)
        elseif cur ~= 'none' then
          local gone = {}
          for _, e in ipairs(elements(K, cur)) do
            if not newer[e] then gone[#gone + 1] = e end
          end
          if #gone > 0 then variadic(REM[cur], K, gone, 1) end
        end
      end
      if items and #items > 0 then
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
        if #list > 0 then variadic(ADD[op], K, list, PAIRS[op] and 2 or 1) end
      end
      if mx ~= '' then call('PEXPIREAT', K, mx) else call('PERSIST', K) end
    end
    call('HSET', M, 'k', v, 'e', me, 'x', mx)
  elseif op == 'p' or op == 'q' then
    -- Expiry write at v: applies iff newer than the key and the last expiry.
    if me and v <= me then
      code = '1'
    else
      me = v; mx = exp or ''
      if op == 'p' then call('PEXPIREAT', K, mx) else call('PERSIST', K) end
      call('HSET', M, 'e', me, 'x', mx)
    end
  else
    -- Element write at v: applies to each element iff newer than its version.
    local cur = call('TYPE', K).ok
    if cur ~= 'none' and cur ~= TYPE[op] then
      code = '2'
    else
      local step = PAIRS[op] and 2 or 1
      local mpos = (op == 'h') and 0 or ((op == 'z') and 1 or 0)
      local names = {}
      for j = 1, #items, step do names[#names + 1] = 'f' .. items[j + mpos] end
      local decided = {}
      local list, marks = {}, {}
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
            if ok then marks[#marks + 1] = name; marks[#marks + 1] = v end
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
        variadic(ADD[op], K, list, step)
        variadic('HSET', M, marks, 2)
        if cur == 'none' and mx and mx ~= '' then call('PEXPIREAT', K, mx) end
      end
    end
  end

  if code == '0' then
    -- Bookkeeping lives as long as the data, and at least `horizon` past the
    -- data's end, so any message still in flight finds its tombstone. With an
    -- expiry x the data (if any) ends at x, so max(now, x) + horizon covers
    -- both cases without asking whether K exists.
    if mx and mx ~= '' then
      local x = tonumber(mx)
      if x < now then x = now end
      call('PEXPIREAT', M, string.format('%.0f', x + horizon))
    elseif op == 'S' or ADDS[op] then
      -- K certainly exists: a new M has no TTL to remove.
      if not (op == 'S' and #all == 0) then call('PERSIST', M) end
    elseif call('EXISTS', K) == 1 then
      call('PERSIST', M)
    else
      call('PEXPIREAT', M, string.format('%.0f', now + horizon))
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
