#!/usr/bin/env node
// A user signs in to todo-mcp through the official TypeScript SDK's OAuth client
// (@modelcontextprotocol/sdk: an `OAuthClientProvider` given to StreamableHTTPClientTransport as
// `authProvider`), the way a desktop or CLI app built on it does, with the browser leg left to
// whoever runs this script:
//
//   node oauth-client.mjs URL [--marker TEXT] [--minimal-metadata]
//
// --minimal-metadata registers the client with only what the flow needs (no client_uri, no
// contacts): see MemoryProvider.clientMetadata for why the default names more.
//
// 1. Connects without a token. The server's 401 sends the SDK through discovery (the protected
//    resource metadata, then the authorization server's), dynamic client registration, and PKCE;
//    it then calls the provider's `redirectToAuthorization(url)`, which prints one JSON line
//    {"authorize": URL} on stdout, and the connection fails with UnauthorizedError.
// 2. Reads one JSON line {"code": ..., "state": ...} on stdin: what the browser's redirect to
//    the redirect URI carried. The SDK does not check `state` (the app does: here, against what
//    the provider's `state()` gave), then `transport.finishAuth(code)` exchanges the code.
// 3. Connects again, with a new transport and client on the same provider (now with a token),
//    calls add_task and list_tasks, and prints one JSON summary line on stdout.
//
// Exits 1 with the reason on stderr (and {"ok": false, "error": ...} on stdout) when anything is
// not as expected, 2 on bad usage.

import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';

class Failure extends Error {}

function check(condition, message, detail) {
  if (!condition) {
    throw new Failure(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

function usage(message) {
  process.stderr.write(`oauth-client: ${message}\nusage: oauth-client.mjs URL [--marker TEXT] [--minimal-metadata]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { marker: null, minimalMetadata: false };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--marker') {
      if (i + 1 >= argv.length) usage('--marker needs a value');
      opts.marker = argv[++i];
    } else if (arg === '--minimal-metadata') opts.minimalMetadata = true;
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 1) usage('needs exactly one URL');
  opts.url = new URL(positional[0]);
  opts.marker ??= `oauth-${randomUUID()}`;
  return opts;
}

/** An in-memory OAuthClientProvider: one sign-in, for this process only. */
class MemoryProvider {
  constructor({ minimal = false } = {}) {
    this.minimal = minimal;
    this.client = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.states = [];
    this.authorizationUrls = [];
    this.discovery = undefined;
  }

  get redirectUrl() {
    return REDIRECT_URI;
  }

  get clientMetadata() {
    const metadata = {
      client_name: 'todo ts e2e',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
    // Hydra (2.3) answers a registration with `"client_uri": ""` and `"contacts": null` for
    // what the client left out, and the SDK's schema of the answer takes neither (a URL, an
    // array), so registering fails with a ZodError (ory/hydra#4116, typescript-sdk#543). An app
    // that names both gets them echoed back.
    if (!this.minimal) {
      metadata.client_uri = 'https://todo-mcp.example/ts-e2e';
      metadata.contacts = ['e2e@todo-mcp.example'];
    }
    return metadata;
  }

  // Without it the SDK sends no `state`, and Hydra refuses the request (it wants at least 8
  // characters of state).
  state() {
    const state = randomBytes(24).toString('base64url');
    this.states.push(state);
    return state;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info) {
    // Stored unchanged (the SDK stamps it with `issuer` and checks that on reading it back).
    this.client = info;
  }

  tokens() {
    return this.savedTokens;
  }

  saveTokens(tokens) {
    this.savedTokens = tokens;
  }

  redirectToAuthorization(url) {
    // The "browser": whoever runs this script follows the URL and answers on stdin.
    this.authorizationUrls.push(url.href);
    process.stdout.write(`${JSON.stringify({ authorize: url.href })}\n`);
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    check(this.verifier, 'no PKCE code verifier was saved');
    return this.verifier;
  }

  saveDiscoveryState(state) {
    this.discovery = state;
  }

  discoveryState() {
    return this.discovery;
  }
}

/** One line from stdin, or null when stdin ends first. */
function readLine() {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    let done = false;
    rl.once('line', (line) => {
      done = true;
      rl.close();
      resolve(line);
    });
    rl.once('close', () => {
      if (!done) resolve(null);
    });
  });
}

/** Calls a tool that must succeed; returns its structured content. */
async function callOk(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  const texts = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
  check(!result.isError, `${name} failed`, texts);
  check(result.structuredContent && typeof result.structuredContent === 'object', `${name} returned no structured content`, result);
  return result.structuredContent;
}

/** A JWT's payload, not verified (the server verified it when it accepted the calls). */
function jwtClaims(token) {
  const parts = String(token).split('.');
  check(parts.length === 3, 'the access token is not a JWT', { parts: parts.length });
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

function newClient() {
  return new Client({ name: 'todo-mcp-tests-ts-oauth', version: '1.0.0' });
}

async function session(opts, summary) {
  const provider = new MemoryProvider({ minimal: opts.minimalMetadata });

  // 1. No token yet: the SDK discovers, registers and sends the user to sign in.
  const first = newClient();
  const firstTransport = new StreamableHTTPClientTransport(opts.url, { authProvider: provider });
  let refused = null;
  try {
    await first.connect(firstTransport);
  } catch (e) {
    refused = e;
  } finally {
    await first.close().catch(() => {});
  }
  check(refused instanceof UnauthorizedError, 'connecting without a token did not end in UnauthorizedError', String(refused?.stack ?? refused));
  check(provider.authorizationUrls.length === 1, 'the SDK did not redirect to the authorization server once', provider.authorizationUrls);
  const authorize = new URL(provider.authorizationUrls[0]);
  summary.authorization = {
    endpoint: `${authorize.origin}${authorize.pathname}`,
    resource: authorize.searchParams.get('resource'),
    code_challenge_method: authorize.searchParams.get('code_challenge_method'),
    scope: authorize.searchParams.get('scope'),
    redirect_uri: authorize.searchParams.get('redirect_uri'),
    client_id: authorize.searchParams.get('client_id'),
  };
  check(provider.client, 'the SDK registered no client');
  summary.client = {
    client_id: provider.client.client_id,
    token_endpoint_auth_method: provider.client.token_endpoint_auth_method ?? null,
    issuer: provider.client.issuer ?? null,
  };

  // 2. The browser's redirect, back from whoever signed the user in.
  const line = await readLine();
  check(line !== null, 'stdin ended before the authorization result');
  const back = JSON.parse(line);
  check(typeof back.code === 'string' && back.code, 'no code on stdin', back);
  check(back.state === provider.states.at(-1), 'the redirect carries another state', { sent: provider.states, got: back.state });
  await firstTransport.finishAuth(back.code);
  const tokens = provider.savedTokens;
  check(tokens?.access_token, 'finishAuth saved no access token', tokens);
  const claims = jwtClaims(tokens.access_token);
  summary.token = {
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    refresh_token: Boolean(tokens.refresh_token),
    issuer: tokens.issuer ?? null,
    claims: { sub: claims.sub, aud: claims.aud, iss: claims.iss, scope: claims.scope ?? claims.scp ?? null },
  };

  // 3. Signed in: a new connection on the same provider calls the tools.
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(opts.url, { authProvider: provider });
  await client.connect(transport);
  try {
    summary.server = client.getServerVersion();
    const title = `Book the venue ${opts.marker}`;
    const added = (await callOk(client, 'add_task', { title })).task;
    check(added && added.title === title, 'add_task returned another task', added);
    summary.added = { id: added.id, title: added.title, owner: added.owner, status: added.status };
    const listing = await callOk(client, 'list_tasks', { search: opts.marker, status: 'all' });
    summary.listed = listing.tasks.map((t) => t.id);
  } finally {
    await client.close();
  }
  // No second sign-in was needed.
  check(provider.authorizationUrls.length === 1, 'the SDK asked the user to sign in again', provider.authorizationUrls);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const summary = { marker: opts.marker };
  try {
    await session(opts, summary);
  } catch (e) {
    process.stderr.write(`oauth-client: ${e instanceof Failure ? 'FAILED' : 'ERROR'}: ${e?.stack ?? e}\n`);
    process.stdout.write(`${JSON.stringify({ ...summary, ok: false, error: String(e?.message ?? e) })}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ ...summary, ok: true })}\n`);
  process.exit(0);
}

await main();
