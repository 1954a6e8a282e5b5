// The official Node SDK (@fingerprint/node-sdk, Server API v4) against the sandbox:
// every endpoint the gateway uses, successes and the errors the sandbox answers. The
// SDK has no base-URL option, so its own `fetch` hook sends its requests to the
// sandbox. Each answer must read as the SDK reads it: a typed error (ServerApiError /
// TooManyRequestsError) with the parsed error code, or the event and page fields.
//
//   node tests/sdk/node_sdk.mjs http://127.0.0.1:PORT SECRET_KEY
import assert from 'node:assert/strict'
import {
  FingerprintServerApiClient,
  RequestError,
  ServerApiError,
  TooManyRequestsError,
} from '@fingerprint/node-sdk'

const [base, key] = process.argv.slice(2)
const toSandbox = (input, init) => {
  const url = String(input instanceof Request ? input.url : input).replace(/^https:\/\/api\.fpjs\.io/, base)
  return fetch(url, init)
}
const api = new FingerprintServerApiClient({ apiKey: key, fetch: toSandbox })
const wrong = new FingerprintServerApiClient({ apiKey: 'not-the-key', fetch: toSandbox })
let calls = 0

async function ok(name, call, check) {
  const answer = await call()
  assert.ok(check(answer), `${name}: unexpected answer ${JSON.stringify(answer)?.slice(0, 2000)}`)
  calls += 1
  console.log(`ok    ${name}`)
}

async function fails(name, call, errorClass, status, code) {
  try {
    await call()
  } catch (e) {
    assert.ok(e instanceof errorClass, `${name}: ${e?.constructor?.name}: ${e?.message}`)
    assert.equal(e.statusCode, status, name)
    assert.equal(e.errorCode, code, name)
    calls += 1
    console.log(`error ${name}: ${e.constructor.name} ${status} ${code}`)
    return
  }
  assert.fail(`${name}: no error`)
}

const EVENT = '1770000000000.nodesdk'
await ok('get_event', () => api.getEvent(EVENT), (e) => e.event_id === EVENT && e.identification?.visitor_id)
await ok('search_events', () => api.searchEvents({ limit: 5, visitor_id: 'nodeSdkVisitorAbcdef' }), (p) => p.events.length > 0)
const first = await api.searchEvents({ limit: 3, visitor_id: 'many20nodeSdkAbcdefgh' })
await ok(
  'search_events next page',
  () => api.searchEvents({ limit: 3, visitor_id: 'many20nodeSdkAbcdefgh', pagination_key: first.pagination_key }),
  (p) => p.events.length === 3 && p.events[0].event_id !== first.events[0].event_id,
)
await ok(
  'search_events with booleans and words',
  () => api.searchEvents({ limit: 10, suspect: false, vpn: true, reverse: true, bot: 'all', total_hits: 10 }),
  (p) => Array.isArray(p.events),
)
await ok('update_event', () => api.updateEvent(EVENT, { suspect: true, linked_id: 'order-7' }), (r) => r === undefined)
await ok('get_event after update', () => api.getEvent(EVENT), (e) => e.suspect === true && e.linked_id === 'order-7')
await ok('delete_visitor_data', () => api.deleteVisitorData('nodeSdkDeletedAbcdef'), (r) => r === undefined)
await fails('get_event unknown', () => api.getEvent('notfound-node'), ServerApiError, 404, 'event_not_found')
await fails('delete unknown visitor', () => api.deleteVisitorData('notfoundnodevisitor1'), ServerApiError, 404, 'visitor_not_found')
await fails('rate limited', () => api.getEvent('ratelimit-node'), TooManyRequestsError, 429, 'too_many_requests')
await fails('server error', () => api.getEvent('error500-node'), ServerApiError, 500, 'failed')
await fails('wrong key', () => wrong.getEvent(EVENT), ServerApiError, 403, 'secret_api_key_not_found')
await fails('update not ready', () => api.updateEvent('notready-node', { suspect: true }), ServerApiError, 409, 'state_not_ready')
await fails('bad search', () => api.searchEvents({ limit: 5, ip_address: 'not-an-ip' }), ServerApiError, 400, 'request_cannot_be_parsed')
// A 502 HTML page from a failing proxy is not a Server API error: the SDK's generic one.
await fails('html from a proxy', () => api.getEvent('html-node'), RequestError, 502, 'Bad Gateway')

console.log(`node sdk: ${calls} calls ok`)
