// A Node.js client of fingerprint.gateway.v1, built from the .proto files in proto/
// with @grpc/proto-loader (no reflection). Run against a gateway in sandbox mode:
//
//   cargo run -- --sandbox                  # in one terminal
//   cd examples/node && npm ci && node client.js localhost:50051
//
// It calls GetEvent, GetVisits (two pages), SearchEvents, LookupTelemetry and ListRules,
// checks the answers, and shows how to read ErrorInfo and RetryInfo from an error.
'use strict';

const path = require('path');
const assert = require('assert/strict');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const googleProtoFiles = require('google-proto-files');

const PROTO_ROOT = path.resolve(__dirname, '../../proto');
const GATEWAY_FILES = ['fingerprint.proto', 'stytch.proto', 'error_reason.proto'].map(
  (f) => path.join(PROTO_ROOT, 'fingerprint/gateway/v1', f),
);

const definition = protoLoader.loadSync(GATEWAY_FILES, {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names as in the .proto: event_id, page_token, ...
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).fingerprint.gateway.v1;

// google.rpc.Status and its details, to decode `grpc-status-details-bin`.
const rpcTypes = protobuf.loadSync([
  googleProtoFiles.getProtoPath('rpc/status.proto'),
  googleProtoFiles.getProtoPath('rpc/error_details.proto'),
]);
const Status = rpcTypes.lookupType('google.rpc.Status');
const ErrorInfo = rpcTypes.lookupType('google.rpc.ErrorInfo');
const RetryInfo = rpcTypes.lookupType('google.rpc.RetryInfo');

/** The rich details of a failed call: { errorInfo, retryDelaySeconds }. */
function errorDetails(err) {
  const out = { errorInfo: null, retryDelaySeconds: null };
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return out;
  for (const any of Status.decode(raw).details) {
    const type = any.type_url.split('/').pop();
    if (type === 'google.rpc.ErrorInfo') out.errorInfo = ErrorInfo.decode(any.value);
    if (type === 'google.rpc.RetryInfo') {
      const delay = RetryInfo.decode(any.value).retryDelay;
      out.retryDelaySeconds = Number(delay.seconds);
    }
  }
  return out;
}

/** A unary call as a promise. */
function call(client, method, request) {
  const deadline = new Date(Date.now() + 10_000);
  return new Promise((resolve, reject) => {
    client[method](request, { deadline }, (err, answer) => (err ? reject(err) : resolve(answer)));
  });
}

async function main() {
  const address = process.argv[2] || 'localhost:50051';
  const credentials = grpc.credentials.createInsecure();
  const fp = new v1.FingerprintService(address, credentials);
  const st = new v1.StytchService(address, credentials);

  const got = await call(fp, 'GetEvent', { event_id: '1770000000000.node01' });
  assert.equal(got.event.event_id, '1770000000000.node01');
  assert.equal(got.event.identification.visitor_id.length, 20);

  // Two pages of a visitor's visits: the second continues exactly after the first.
  const visitor = 'many25nodeexampleabc';
  const first = await call(fp, 'GetVisits', { visitor_id: visitor, page_size: 10 });
  assert.equal(first.visits.length, 10);
  assert.ok(first.next_page_token, 'a second page exists');
  const second = await call(fp, 'GetVisits', {
    visitor_id: visitor,
    page_size: 10,
    page_token: first.next_page_token,
  });
  assert.equal(second.visits.length, 10);
  const ids = new Set([...first.visits, ...second.visits].map((v) => v.event_id));
  assert.equal(ids.size, 20, 'no duplicate across pages');

  const search = await call(fp, 'SearchEvents', {
    filter: { visitor_id: visitor, bot: 'bad' },
    page_size: 5,
  });
  assert.equal(search.events.length, 5);

  const lookup = await call(st, 'LookupTelemetry', {
    telemetry_id: 'bot-node-example',
    external_metadata: { external_id: 'user-42' },
  });
  assert.equal(lookup.verdict.action, 'ACTION_BLOCK');
  assert.equal(lookup.external_metadata.external_id, 'user-42');

  const rules = await call(st, 'ListRules', { page_size: 2 });
  assert.equal(rules.rules.length, 2);
  assert.ok(rules.next_page_token);

  // Errors: the status code, then ErrorInfo (the gateway's reason) and RetryInfo.
  try {
    await call(fp, 'GetEvent', { event_id: 'ratelimit-node' });
    assert.fail('expected RESOURCE_EXHAUSTED');
  } catch (err) {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.message);
    const { errorInfo, retryDelaySeconds } = errorDetails(err);
    assert.equal(errorInfo.reason, 'UPSTREAM_RATE_LIMITED');
    assert.equal(errorInfo.domain, 'fingerprint-gateway.internal');
    assert.equal(errorInfo.metadata.upstream, 'fingerprint');
    assert.equal(retryDelaySeconds, 7);
    console.log(`rate limited (${errorInfo.reason}); retry in ${retryDelaySeconds}s`);
  }
  try {
    await call(fp, 'GetEvent', { event_id: 'notfound-node' });
    assert.fail('expected NOT_FOUND');
  } catch (err) {
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(errorDetails(err).errorInfo.reason, 'EVENT_NOT_FOUND');
  }
  console.log('node example: ok');
  fp.close();
  st.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
