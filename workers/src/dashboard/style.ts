/**
 * @module
 * The dashboard's one stylesheet, bundled with the Worker and served at `/dashboard/assets/style.css` (the pages'
 * Content-Security-Policy allows styles from the edge itself only: no inline style, no CDN).
 */
export const DASHBOARD_CSS = `
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6577; --line: #d8dde6; --accent: #1f6feb; --warn: #b42318; --ok: #067647; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7f9; }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #111827; color: #fff; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header nav a { color: #cbd5e1; text-decoration: none; margin-right: 16px; }
header nav a[aria-current="page"] { color: #fff; border-bottom: 2px solid #60a5fa; padding-bottom: 2px; }
header form { margin-left: auto; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 20px; margin: 4px 0 16px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; letter-spacing: .02em; }
section.card > h2:first-child { margin-top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eef2f7; }
.badge.ok { background: #dcfae6; color: var(--ok); }
.badge.warn { background: #fee4e2; color: var(--warn); }
.notice { padding: 8px 12px; border-radius: 6px; background: #eff8ff; border: 1px solid #b2ddff; margin-bottom: 16px; }
.error { padding: 8px 12px; border-radius: 6px; background: #fef3f2; border: 1px solid #fecdca; color: var(--warn); margin-bottom: 16px; }
form.inline { display: inline; }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { color: var(--warn); border-color: #fda29b; }
input[type="text"], input[type="password"], select { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; min-width: 280px; }
.login { max-width: 420px; margin: 80px auto; }
.login label { display: block; margin-bottom: 6px; font-weight: 600; }
.stats { display: flex; gap: 24px; margin: 4px 0 10px; }
.stats div { min-width: 120px; }
.stats b { display: block; font-size: 18px; }
svg.chart { display: block; max-width: 100%; height: auto; margin-top: 8px; }
svg.chart text { font-size: 11px; fill: var(--muted); }
svg.chart .grid { stroke: #eef0f4; }
svg.chart .baseline { stroke: #9aa4b2; }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; }
svg.chart .point { fill: var(--accent); }
svg.chart .budget { stroke: var(--warn); stroke-dasharray: 6 4; }
svg.chart text.budget-label { fill: var(--warn); }
svg.chart .bar { fill: #2e90fa; }
`;
