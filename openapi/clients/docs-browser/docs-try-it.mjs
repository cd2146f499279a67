// The /docs page (Scalar API reference, @scalar/api-reference 1.28.15 as embedded by
// poem-openapi) in headless Chromium, against a live server:
//
//   1. the page's title is "Tenantry API";
//   2. every tag of /openapi.json (read from the server) is in the sidebar, and, once
//      expanded, lists exactly its operations, each by its summary;
//   3. Try-it: list_people's "Test Request" opens Scalar's request client; the `token`
//      (HTTP bearer) scheme is picked under Authentication, the token is pasted (through
//      the clipboard, Ctrl+V) into its "Bearer Token" field, and Send goes to
//      GET /v1/people with `Authorization: Bearer <token>`; the server answers 200 and
//      the response panel shows "200 OK" and a body with "data" and the first person's
//      id as the server lists it to this token;
//   4. a screenshot of the request client with the response is written to
//      TENANTRY_DOCS_SCREENSHOT (default /var/tmp/tenantry-artifacts/docs-try-it.png),
//      on failure too (as the failing state).
//
// Environment: TENANTRY_BASE_URL (http://127.0.0.1:PORT), TENANTRY_TOKEN (a token with
// people:read for a tenant that has people, e.g. the first-run banner's `export TOKEN=`),
// CHROMIUM_PATH (default /usr/bin/chromium). Run by `bash .ci/docs-browser`, which starts
// the server; by hand: `npm ci && TENANTRY_BASE_URL=… TENANTRY_TOKEN=… node docs-try-it.mjs`.
//
// The browser talks to the loopback server only: any other request (Scalar's web fonts
// from fonts.scalar.com, anything else) is aborted and listed. No sleeps: every step
// waits on a locator or a network event, with a timeout.
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

const base = (process.env.TENANTRY_BASE_URL ?? '').replace(/\/+$/, '');
const token = process.env.TENANTRY_TOKEN ?? '';
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const screenshot =
  process.env.TENANTRY_DOCS_SCREENSHOT || '/var/tmp/tenantry-artifacts/docs-try-it.png';
const TIMEOUT = 30_000;

if (!/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost):\d+$/.test(base)) {
  throw new Error(`TENANTRY_BASE_URL must be a loopback http://host:port, got '${base}'`);
}
if (!token) throw new Error('TENANTRY_TOKEN is empty');
const origin = new URL(base).origin;

let step = 'start';
const t0 = Date.now();
function log(message) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${message}`);
}
function check(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}

// --- what the server says ----------------------------------------------------------
step = 'read /openapi.json';
const spec = await (await fetch(`${base}/openapi.json`)).json();
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/** tag -> [{ method, path, operationId, summary }] */
const byTag = new Map((spec.tags ?? []).map((t) => [t.name, []]));
for (const [path, item] of Object.entries(spec.paths ?? {})) {
  for (const method of METHODS) {
    const op = item[method];
    if (!op) continue;
    for (const tag of op.tags ?? []) {
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ method, path, operationId: op.operationId, summary: op.summary });
    }
  }
}
const operationCount = [...byTag.values()].reduce((n, ops) => n + ops.length, 0);
check(byTag.size > 0 && operationCount > 0, 'the spec has no tagged operations');
const listPeople = [...byTag.values()].flat().find((op) => op.operationId === 'list_people');
check(
  listPeople && listPeople.method === 'get' && listPeople.path === '/v1/people',
  'the spec has no list_people (GET /v1/people)',
);
log(`spec: ${byTag.size} tags, ${operationCount} operations`);

// The first person the server lists to this token, to find in the response panel.
step = 'GET /v1/people from node';
const direct = await fetch(`${base}/v1/people?limit=1`, {
  headers: { authorization: `Bearer ${token}` },
});
check(direct.status === 200, `the server answered ${direct.status} to the token`);
const firstPersonId = (await direct.json()).data?.[0]?.id;
check(typeof firstPersonId === 'string', 'the token sees no people (the demo tenant has some)');

// --- the browser -------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath,
  headless: true,
  // No sandbox only when running as root (CI containers), where Chromium refuses it.
  chromiumSandbox: process.getuid?.() !== 0,
});
const blocked = new Set();
const pageErrors = [];
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  // Loopback only: the server's own origin goes through, anything else is aborted.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith('data:') || url.startsWith('blob:')) {
      return route.continue();
    }
    blocked.add(url);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (error) => pageErrors.push(error.message));

  // 1. The page and its title.
  step = 'open /docs';
  const docs = await page.goto(`${base}/docs`);
  check(docs?.status() === 200, `GET /docs answered ${docs?.status()}`);
  const title = await page.title();
  check(title === 'Tenantry API', `the page's title is '${title}', expected 'Tenantry API'`);
  log(`/docs: title '${title}'`);

  // 2. Every tag in the sidebar, expanded, with exactly its operations, by summary.
  // Scalar 1.28: each tag is an <li class="sidebar-group-item"> with a toggle button
  // named "Expand <tag>" / "Collapse <tag>"; a collapsed tag's operations are not in the
  // DOM. An operation is an <li id="sidebar-tag/<tag>/<METHOD>/<path>"> whose
  // .sidebar-heading-link-title is the summary (Scalar falls back to the path).
  for (const [tag, ops] of byTag) {
    step = `sidebar: tag '${tag}'`;
    const toggle = page.getByRole('button', { name: `Expand ${tag}`, exact: true });
    const collapse = page.getByRole('button', { name: `Collapse ${tag}`, exact: true });
    await toggle.or(collapse).waitFor();
    if (await toggle.isVisible()) await toggle.click();
    await collapse.waitFor();
    const group = page.locator('li.sidebar-group-item').filter({ has: collapse });
    const items = group.locator('ul.sidebar-group > li.sidebar-group-item');
    for (const op of ops) {
      const suffix = `/${op.method.toUpperCase()}${op.path}`;
      // The id's suffix is what ties an entry to its method and path.
      const entry = items.and(page.locator(`li[id$="${cssString(suffix)}"]`));
      await entry.first().waitFor();
      const text = (await entry.first().locator('.sidebar-heading-link-title').innerText()).trim();
      const expected = [op.summary, op.operationId, op.path].filter(Boolean);
      check(
        expected.includes(text),
        `${op.method.toUpperCase()} ${op.path} (${op.operationId}) is listed as '${text}', expected '${expected[0]}'`,
      );
    }
    const listed = await items.count();
    check(listed === ops.length, `${listed} entries listed, the spec has ${ops.length}`);
    log(`sidebar: ${tag}: ${ops.length}/${ops.length} operations (${ops.map((o) => o.operationId).join(', ')})`);
  }

  // 3. Try-it: list_people through Scalar's request client, with a pasted token.
  step = 'Try-it: open the request client for list_people';
  // Scalar renders a tag's sections lazily: the sidebar entry scrolls to (and renders) it.
  await page.locator(`li.sidebar-group-item[id$="/GET${cssString(listPeople.path)}"] a.sidebar-heading-link`).click();
  const section = page.locator(`section[id$="/GET${cssString(listPeople.path)}"]`).filter({
    has: page.getByRole('heading', { name: listPeople.summary, exact: true }),
  });
  await section.getByRole('button', { name: /Test Request/ }).click();
  const client = page.getByRole('dialog', { name: 'API Client' });
  await client.waitFor();
  // The client's Send button names the operation's method and URL.
  const send = client.getByRole('button', {
    name: `Send get request to ${base}${listPeople.path}`,
    exact: true,
  });
  await send.waitFor();
  log('request client open');

  step = 'Try-it: pick the `token` bearer scheme';
  // Scalar 1.28 preselects no scheme unless the page's configuration names one
  // (authentication.preferredSecurityScheme, which /docs does not set today); otherwise
  // pick `token`, the first requirement of every operation, from the Auth Type menu.
  const tokenField = client.getByLabel('Bearer Token');
  const authType = client.getByRole('button', { name: 'Select Auth Type' });
  await tokenField.or(authType).first().waitFor();
  if (await tokenField.isVisible()) {
    log('the `token` scheme is preselected');
  } else {
    await authType.click();
    await page.getByRole('listbox').getByRole('option', { name: 'token', exact: true }).click();
    await page.keyboard.press('Escape');
    await tokenField.waitFor();
    log('picked the `token` scheme under Authentication > Auth Type');
  }

  step = 'Try-it: paste the token';
  await page.evaluate((value) => navigator.clipboard.writeText(value), token);
  await tokenField.click();
  await page.keyboard.press('ControlOrMeta+V');
  check((await tokenField.inputValue()) === token, 'the Bearer Token field does not hold the pasted token');
  log('token pasted into Authentication > token > Bearer Token');

  step = 'Try-it: send list_people';
  const sent = page.waitForResponse(
    (r) => r.request().method() === 'GET' && new URL(r.url()).pathname === listPeople.path,
    { timeout: TIMEOUT },
  );
  await send.click();
  const response = await sent;
  const request = response.request();
  check(
    new URL(response.url()).origin === origin,
    `the request went to ${response.url()}, not straight to ${origin}`,
  );
  check(
    request.headers().authorization === `Bearer ${token}`,
    `the request's Authorization is '${(request.headers().authorization ?? '(none)').slice(0, 20)}…', not 'Bearer <pasted token>'`,
  );
  check(response.status() === 200, `the server answered ${response.status()}`);
  log(`server: ${request.method()} ${new URL(response.url()).pathname} with Authorization: Bearer <pasted token> -> ${response.status()} (x-request-id ${response.headers()['x-request-id']})`);

  step = 'Try-it: the response panel';
  const panel = client.getByRole('region', { name: 'Response' });
  await panel.locator('.request-response-header').getByText(/\b200 OK\b/).waitFor();
  const body = panel.locator('.cm-content');
  await body.getByText('"data"', { exact: true }).first().waitFor();
  await body.getByText(`"${firstPersonId}"`).first().waitFor();
  log(`response panel: 200 OK, body with "data" and the first person ${firstPersonId}`);

  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);

  step = 'screenshot';
  await saveScreenshot(page);
  console.log(
    `\nok: /docs lists ${operationCount} operations in ${byTag.size} tags; Try-it list_people with a pasted token -> 200`,
  );
} catch (error) {
  if (page) {
    await saveScreenshot(page).catch((e) => console.error(`no screenshot: ${e.message}`));
  }
  if (pageErrors.length) console.error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  console.error(`FAILED at step '${step}'`);
  throw error;
} finally {
  if (blocked.size) {
    log(`aborted ${blocked.size} non-loopback request(s): ${[...blocked].join(', ')}`);
  }
  await browser.close();
}

async function saveScreenshot(page) {
  await mkdir(dirname(screenshot), { recursive: true });
  // Finite CSS animations (the response heading's, the address bar's) are finished first.
  await page.screenshot({ path: screenshot, animations: 'disabled' });
  log(`screenshot: ${screenshot}`);
}

/** A string for a CSS attribute selector's double quotes. */
function cssString(value) {
  return value.replace(/["\\]/g, '\\$&');
}
