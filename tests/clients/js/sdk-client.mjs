#!/usr/bin/env node
// A todo-mcp session through the official TypeScript SDK (@modelcontextprotocol/sdk), as an
// application built on it would run one: connect, list the tools, add a task, find it with
// list_tasks, complete it, and (with --expect-reminder) wait for a reminder the server pushes.
//
//   node sdk-client.mjs stdio [--env KEY=VALUE]... -- COMMAND [ARG]...
//   node sdk-client.mjs http URL --token JWT          (StreamableHTTPClientTransport)
//   node sdk-client.mjs sse URL --token JWT           (SSEClientTransport, HTTP+SSE, 2024-11-05)
//
// Options:
//   --marker TEXT               put TEXT in the task's title (default: a random one)
//   --expect-reminder SECONDS   after the completion, add a second task with a reminder SECONDS
//                               ahead (whole seconds) and wait for the server to push it: an
//                               MCP log message (`notifications/message`, logger
//                               `todo.reminders`) whose data names that task; then check that
//                               list_notifications has it too
//   --reminder-timeout SECONDS  how long after the reminder's time to wait for it (default 5)
//
// For stdio the server gets the SDK's default environment (PATH, HOME, USER, ...) plus --env.
// The token may also come from $TODO_MCP_TOKEN. Prints one JSON summary on stdout; exits 1 with
// the reason on stderr when anything is not as expected (2 on bad usage).

import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const EXPECTED_TOOLS = [
  'add_task',
  'list_tasks',
  'get_task',
  'update_task',
  'complete_task',
  'reopen_task',
  'delete_task',
  'set_reminder',
  'cancel_reminder',
  'list_notifications',
];
const REMINDER_LOGGER = 'todo.reminders';

class Failure extends Error {}

function check(condition, message, detail) {
  if (!condition) {
    throw new Failure(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

function usage(message) {
  process.stderr.write(`sdk-client: ${message}\n`);
  process.stderr.write(
    'usage: sdk-client.mjs stdio [--env K=V]... -- CMD [ARG]... | http URL --token JWT | sse URL --token JWT\n' +
      '       [--marker TEXT] [--expect-reminder SECONDS] [--reminder-timeout SECONDS]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { env: {}, marker: null, expectReminder: null, reminderTimeout: 5, token: null };
  const [kind, ...rest] = argv;
  if (!['stdio', 'http', 'sse'].includes(kind)) usage(`unknown transport ${JSON.stringify(kind)}`);
  opts.kind = kind;
  const positional = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const value = () => {
      if (i + 1 >= rest.length) usage(`${arg} needs a value`);
      return rest[++i];
    };
    if (arg === '--') {
      positional.push(...rest.slice(i + 1));
      break;
    } else if (arg === '--env') {
      const kv = value();
      const eq = kv.indexOf('=');
      if (eq < 1) usage(`--env wants KEY=VALUE, got ${kv}`);
      opts.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (arg === '--token') opts.token = value();
    else if (arg === '--marker') opts.marker = value();
    else if (arg === '--expect-reminder') opts.expectReminder = Number(value());
    else if (arg === '--reminder-timeout') opts.reminderTimeout = Number(value());
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (kind === 'stdio') {
    if (positional.length < 1) usage('stdio needs the server command after --');
    [opts.command, ...opts.args] = positional;
  } else {
    if (positional.length !== 1) usage(`${kind} needs exactly one URL`);
    opts.url = new URL(positional[0]);
    opts.token ??= process.env.TODO_MCP_TOKEN ?? null;
    if (!opts.token) usage(`${kind} needs --token (or $TODO_MCP_TOKEN)`);
  }
  if (opts.expectReminder !== null && !(opts.expectReminder > 0)) usage('--expect-reminder wants seconds > 0');
  opts.marker ??= `sdk-${randomUUID()}`;
  return opts;
}

function makeTransport(opts) {
  if (opts.kind === 'stdio') {
    return new StdioClientTransport({ command: opts.command, args: opts.args, env: opts.env, stderr: 'inherit' });
  }
  const requestInit = { headers: { Authorization: `Bearer ${opts.token}` } };
  if (opts.kind === 'http') return new StreamableHTTPClientTransport(opts.url, { requestInit });
  return new SSEClientTransport(opts.url, { requestInit });
}

/** Calls a tool that must succeed; returns its structured content (checked against the text). */
async function callOk(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  const texts = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text);
  check(!result.isError, `${name} failed`, texts);
  const data = result.structuredContent;
  check(data && typeof data === 'object', `${name} returned no structured content`, result);
  check(texts.length > 0 && texts[0].trim() !== '', `${name} returned no text summary`, result);
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await sleep(20);
  }
  return predicate();
}

async function session(opts, summary) {
  const client = new Client({ name: 'todo-mcp-tests-ts-sdk', version: '1.0.0' });
  const pushed = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    pushed.push({ received: Date.now(), params: n.params });
  });
  const transport = makeTransport(opts);
  // The version the client settles on in the handshake (the SDK tells the transport).
  const setVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (v) => {
    summary.protocol_version = v;
    setVersion?.(v);
  };

  await client.connect(transport);
  try {
    summary.server = client.getServerVersion();
    const capabilities = client.getServerCapabilities() ?? {};
    summary.capabilities = Object.keys(capabilities).sort();
    check(capabilities.tools, 'the server does not announce tools', capabilities);

    // 1. The tools.
    const { tools } = await client.listTools();
    summary.tools = tools.map((t) => t.name).sort();
    const missing = EXPECTED_TOOLS.filter((n) => !summary.tools.includes(n));
    check(missing.length === 0, 'tools missing from tools/list', { missing, listed: summary.tools });
    for (const t of tools.filter((t) => EXPECTED_TOOLS.includes(t.name))) {
      check(t.inputSchema?.type === 'object', `${t.name} has no object input schema`, t.inputSchema);
      check(t.outputSchema?.type === 'object', `${t.name} has no object output schema`, t.outputSchema);
    }

    // 2. add_task.
    const title = `Buy oat milk ${opts.marker}`;
    const added = (await callOk(client, 'add_task', { title, priority: 'high', tags: ['clients'] })).task;
    check(added && added.title === title, 'add_task returned another task', added);
    check(added.status === 'pending', 'a new task is not pending', added);
    summary.added = { id: added.id, title: added.title, status: added.status };

    // 3. list_tasks finds it, and only it, by its marker.
    const listing = await callOk(client, 'list_tasks', { search: opts.marker, status: 'all' });
    const found = listing.tasks.filter((t) => t.id === added.id);
    check(found.length === 1 && listing.tasks.length === 1, 'list_tasks does not show exactly the new task', listing);
    check(listing.total === 1, 'list_tasks counts another total', listing);
    summary.listed = listing.tasks.map((t) => t.id);

    // 4. complete_task.
    const done = (await callOk(client, 'complete_task', { task_id: added.id })).task;
    check(done.id === added.id && done.status === 'completed', 'complete_task did not complete the task', done);
    check(typeof done.completed_at === 'string', 'a completed task has no completed_at', done);
    const after = await callOk(client, 'list_tasks', { search: opts.marker, status: 'completed' });
    check(after.tasks.length === 1 && after.tasks[0].status === 'completed', 'the task is not listed as completed', after);
    summary.completed = { id: done.id, status: done.status, completed_at: done.completed_at };

    // 5. A pushed reminder (completing a task cancels its reminders, so a second task).
    summary.reminder = null;
    if (opts.expectReminder !== null) {
      summary.reminder = await pushedReminder(client, capabilities, pushed, opts);
    }
  } finally {
    await client.close();
  }
}

async function pushedReminder(client, capabilities, pushed, opts) {
  // A client that shows log messages opts in to them (over stdio they come regardless).
  if (capabilities.logging) await client.setLoggingLevel('info');
  const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + opts.expectReminder * 1000);
  const title = `Call the plumber ${opts.marker}`;
  const task = (await callOk(client, 'add_task', { title, reminders: [{ at: at.toISOString() }] })).task;
  check(task.reminders?.length === 1, 'add_task did not keep the reminder', task);

  const isOurs = (p) => p.params?.logger === REMINDER_LOGGER && p.params?.data?.task_id === task.id;
  const timeoutMs = at.getTime() - Date.now() + opts.reminderTimeout * 1000;
  const arrived = await waitFor(() => pushed.some(isOurs), timeoutMs);
  check(arrived, `no ${REMINDER_LOGGER} log message for the task within ${opts.reminderTimeout}s of ${at.toISOString()}`, {
    received: pushed.map((p) => p.params),
  });
  await sleep(300); // time for a duplicate to show up
  const ours = pushed.filter(isOurs);
  check(ours.length === 1, 'the reminder was pushed more than once', ours.map((p) => p.params));
  const { received, params } = ours[0];
  check(params.data.title === title, 'the pushed reminder names another title', params.data);
  check(params.data.read === false, 'a just-pushed reminder is already read', params.data);
  check(received >= at.getTime() - 50, 'the reminder was pushed before its time', { received, at });

  const listing = await callOk(client, 'list_notifications', {});
  check(
    listing.notifications.some((n) => n.id === params.data.id && n.task_id === task.id),
    'list_notifications does not have the pushed notification',
    listing,
  );
  await callOk(client, 'complete_task', { task_id: task.id });
  return {
    task_id: task.id,
    at: at.toISOString(),
    lateness_ms: received - at.getTime(),
    level: params.level,
    logger: params.logger,
    data: params.data,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const summary = { transport: opts.kind, marker: opts.marker };
  try {
    await session(opts, summary);
  } catch (e) {
    process.stderr.write(`sdk-client: ${e instanceof Failure ? 'FAILED' : 'ERROR'}: ${e?.stack ?? e}\n`);
    process.stdout.write(`${JSON.stringify({ ...summary, ok: false, error: String(e?.message ?? e) })}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ ...summary, ok: true })}\n`);
  process.exit(0);
}

await main();
