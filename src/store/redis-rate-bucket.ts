// The token-endpoint budget's shared state in Redis: one hash per origin (one slot), on Redis's
// clock so replicas whose clocks differ still share one rate. The hash holds the token bucket
// (level, at) and the origin's 429 episode (floor: the rate right after the last 429, t429: when,
// ep: an episode is open, block: Retry-After ends), so a 429 seen by one replica halves the rate
// every replica refills at, and its Retry-After holds every replica back.
//
// ARGV (all scripts): maxRate per second (configured: the recovery slope is a tenth of it),
// ceiling per second (the caller's own effective rate, e.g. its halving while Redis was away),
// burst, the minimum rate per second. THROTTLE adds the Retry-After in ms (-1: none).

const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local ceiling = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local minRate = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'level', 'at', 'floor', 't429', 'ep', 'block')
local level = tonumber(h[1])
local at = tonumber(h[2])
if level == nil or at == nil then level = burst; at = now end
local floor = tonumber(h[3])
local t429 = tonumber(h[4])
local ep = tonumber(h[5]) or 0
local block = tonumber(h[6]) or 0
local eff = max
if floor ~= nil and t429 ~= nil then eff = math.min(max, floor + math.max(0, now - t429) / 1000 * max / 10) end
local rate = math.max(minRate, math.min(ceiling, eff))
if now > at then level = math.min(burst, level + (now - at) / 1000 * rate); at = now end
`;

/** Keeps the hash a minute past the time a full bucket and a full recovery take, and past Retry-After. */
const EXPIRE = `redis.call('PEXPIRE', KEYS[1], math.max(math.ceil(burst / rate * 1000), block - now) + 60000)`;

/** Takes one request: returns {wait ms (0: taken), the shared effective rate, episode open}. */
export const TAKE_RATE = `${PRELUDE}
local wait = 0
if block > now then wait = block - now
elseif level >= 1 then level = level - 1
else wait = math.ceil((1 - level) / rate * 1000) end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(at))
${EXPIRE}
return {wait, tostring(eff), ep}`;

/**
 * A 429 (or Retry-After): halves the shared rate once per episode (a later 429 in the same
 * episode restarts the recovery from where it is), empties the saved-up burst, and records the
 * Retry-After. Returns the shared effective rate now.
 */
export const THROTTLE_RATE = `${PRELUDE}
local ra = tonumber(ARGV[5])
if ep == 1 then floor = eff else floor = math.max(minRate, eff / 2) end
level = math.min(level, 0)
if ra >= 0 then block = math.max(block, now + ra) end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(at), 'floor', tostring(floor), 't429', tostring(now), 'ep', '1', 'block', tostring(block))
rate = math.max(minRate, floor)
${EXPIRE}
return tostring(floor)`;

/** A success: the episode is over (the next 429 halves again). */
export const END_EPISODE = `
if redis.call('HGET', KEYS[1], 'ep') == '1' then redis.call('HSET', KEYS[1], 'ep', '0') end
return 0`;
