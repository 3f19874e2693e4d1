#!/usr/bin/env node
// A real, independent OpenID Connect provider for Larder's tests, built on the
// certified `oidc-provider` package (panva). It issues RS256-signed JWT access
// tokens to confidential clients through the client_credentials grant and serves
// discovery + JWKS over plain HTTP on 127.0.0.1. See README.md beside this file.
//
// Usage:
//   node provider.mjs [--port N] [--clients FILE|JSON] [--audience AUD] [--exit-on-stdin-eof]
//   (a bare number is the port, any other bare argument is the clients file)
// Environment (argv wins): OIDC_PORT (default 0 = any free port), OIDC_CLIENTS,
//   OIDC_AUDIENCE (default "larder"), OIDC_RESOURCE (default "urn:larder"),
//   OIDC_CLIENT_ID_CLAIM (key under resource_access; default: the calling client's id),
//   OIDC_TOKEN_TTL (seconds, default 3600), OIDC_EXIT_ON_STDIN_EOF=1.
// stdout carries only protocol lines: "READY <issuer>" once listening and
// "ROTATED <kid>" after each key rotation. Everything else goes to stderr.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// oidc-provider prints notices with console.info/log; keep stdout for our protocol.
console.log = console.error;
console.info = console.error;

function say(line) {
  process.stdout.write(`${line}\n`);
}

function die(msg) {
  console.error(`oidc provider: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------- arguments
const opts = {
  port: process.env.OIDC_PORT,
  clients: process.env.OIDC_CLIENTS,
  audience: process.env.OIDC_AUDIENCE,
  exitOnStdinEof: process.env.OIDC_EXIT_ON_STDIN_EOF === '1',
};
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      i += 1;
      return argv[i];
    };
    if (a === '--port') opts.port = value();
    else if (a === '--clients') opts.clients = value();
    else if (a === '--audience') opts.audience = value();
    else if (a === '--exit-on-stdin-eof') opts.exitOnStdinEof = true;
    else if (a === '-h' || a === '--help') {
      say('usage: provider.mjs [--port N] [--clients FILE|JSON] [--audience AUD] [--exit-on-stdin-eof]');
      process.exit(0);
    } else if (/^\d+$/.test(a)) opts.port = a;
    else if (!a.startsWith('-')) opts.clients = a;
    else die(`unknown argument ${a}`);
  }
}

const PORT = Number(opts.port || 0);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) die(`bad port ${opts.port}`);
const AUDIENCE = opts.audience || 'larder';
const RESOURCE = process.env.OIDC_RESOURCE || 'urn:larder';
const CLIENT_ID_CLAIM = process.env.OIDC_CLIENT_ID_CLAIM || '';
const TOKEN_TTL = Number(process.env.OIDC_TOKEN_TTL || 3600);
if (!Number.isInteger(TOKEN_TTL) || TOKEN_TTL <= 0) die('OIDC_TOKEN_TTL must be a positive integer');

// ------------------------------------------------------------------ clients
// Each entry: client_id, client_secret (required); roles, groups (lists);
// optional: token_endpoint_auth_method (default client_secret_basic),
// resource_access_client (key under resource_access), resource_roles (roles under
// resource_access, default = roles), access_token_ttl (seconds), claims (object
// merged last into the token; a null value removes that claim).
function loadClients(spec) {
  if (!spec) {
    return [{ client_id: 'larder-test', client_secret: 'larder-secret', roles: [], groups: [] }];
  }
  const text = spec.trimStart().startsWith('[') ? spec : readFileSync(spec, 'utf8');
  let list;
  try {
    list = JSON.parse(text);
  } catch (e) {
    die(`clients config is not JSON: ${e.message}`);
  }
  if (!Array.isArray(list) || !list.length) die('clients config must be a non-empty JSON array');
  for (const c of list) {
    if (typeof c?.client_id !== 'string' || typeof c?.client_secret !== 'string') {
      die('every client needs string client_id and client_secret');
    }
  }
  return list;
}

const CLIENTS = new Map(loadClients(opts.clients).map((c) => [c.client_id, c]));

// ------------------------------------------------------------- provider lib
async function loadProvider() {
  const candidates = [];
  const req = createRequire(import.meta.url);
  try {
    // local node_modules next to/above this file, or NODE_PATH
    candidates.push(req.resolve('oidc-provider'));
  } catch {
    const dir = process.env.LARDER_OIDC_DIR || join(homedir(), '.cache/larder/oidc-provider');
    try {
      candidates.push(createRequire(join(dir, 'package.json')).resolve('oidc-provider'));
    } catch {
      die(`cannot find the oidc-provider package (not in NODE_PATH nor ${dir}/node_modules); run scripts/oidc-provider.sh install`);
    }
  }
  const mod = await import(pathToFileURL(candidates[0]).href);
  return mod.default;
}

const Provider = await loadProvider();

// --------------------------------------------------------------------- keys
let generation = 0;
function newSigningKey() {
  generation += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: `larder-test-${generation}-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig',
  };
}

// ------------------------------------------------------------ configuration
function asList(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function buildProvider(issuer, signingKey) {
  const clients = [...CLIENTS.values()].map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
  }));

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomUUID()] },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: 'RS256',
    },
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || TOKEN_TTL,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // client_credentials without a `resource` parameter gets RESOURCE,
        // so every token is a JWT with aud = AUDIENCE.
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, client) => {
          const c = CLIENTS.get(client?.clientId) || {};
          return {
            scope: 'openid feast',
            // another explicit resource indicator becomes the audience itself
            // (handy for "wrong audience" tests)
            audience: indicator === RESOURCE ? AUDIENCE : indicator,
            accessTokenFormat: 'jwt',
            accessTokenTTL: Number(c.access_token_ttl) || TOKEN_TTL,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const c = CLIENTS.get(token.clientId);
      if (!c) return undefined;
      const roles = asList(c.roles);
      const claims = {
        preferred_username: c.client_id,
        roles,
        groups: asList(c.groups),
        resource_access: {
          [c.resource_access_client || CLIENT_ID_CLAIM || c.client_id]: {
            roles: c.resource_roles === undefined ? roles : asList(c.resource_roles),
          },
        },
      };
      for (const [k, v] of Object.entries(c.claims || {})) {
        if (v === null) delete claims[k];
        else claims[k] = v;
      }
      return claims;
    },
    // Nothing interactive is used; these only keep the defaults from warning.
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc provider server_error:', err));
  return provider;
}

// ------------------------------------------------------------------- server
let current = null; // { provider, callback, kid }
let issuer = null;

function rotate() {
  const key = newSigningKey();
  const provider = buildProvider(issuer, key);
  current = { provider, callback: provider.callback(), kid: key.kid };
  return key.kid;
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/rotate') {
    const kid = rotate();
    say(`ROTATED ${kid}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid }));
    return;
  }
  if (req.method === 'GET' && req.url === '/kid') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: current?.kid ?? null }));
    return;
  }
  if (!current) {
    res.writeHead(503);
    res.end();
    return;
  }
  current.callback(req, res);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('SIGUSR1', () => {
  if (!issuer) return;
  say(`ROTATED ${rotate()}`);
});

server.on('error', (err) => die(`listen on 127.0.0.1:${PORT}: ${err.message}`));
server.listen(PORT, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  rotate();
  say(`READY ${issuer}`);
  if (opts.exitOnStdinEof) {
    process.stdin.on('end', shutdown);
    process.stdin.on('close', shutdown);
    process.stdin.resume();
  }
});
