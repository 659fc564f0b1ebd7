import { describe, expect, it } from "vitest";
import { escapeXml, lineChartSvg, niceTicks } from "./svg.ts";

/** A strict-enough well-formedness check: every tag closes in order, attributes are quoted, no raw `<` or `&` in text. */
function assertWellFormed(svg: string): void {
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(body))) {
    if (m.index !== consumed) throw new Error(`unparsable at ${consumed}: ${body.slice(consumed, consumed + 40)}`);
    consumed = re.lastIndex;
    if (m[5] !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(m[5])) throw new Error(`raw & in text: ${m[5]}`);
      continue;
    }
    const [, close, name, , self] = m;
    if (close) {
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
    } else if (!self) stack.push(name!);
  }
  if (consumed !== body.length) throw new Error(`trailing garbage at ${consumed}`);
  if (stack.length) throw new Error(`unclosed ${stack.join(",")}`);
}

describe("escapeXml", () => {
  it("escapes the five specials and drops characters XML forbids", () => {
    expect(escapeXml(`<a href="x">&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
    expect(escapeXml("a\u0000b\u001Fc")).toBe("abc");
  });
});

describe("niceTicks", () => {
  it("covers the range with 1/2/5 steps", () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 20)).toEqual([0, 5, 10, 15, 20]);
    expect(() => niceTicks(0, Infinity)).toThrow(RangeError);
  });
});

describe("lineChartSvg", () => {
  it("renders well-formed SVG whatever the labels hold, skipping non-finite points", () => {
    const svg = lineChartSvg({
      title: `Accuracy <DP> & "baseline" 'q'`,
      xLabel: "round </svg><script>",
      yLabel: "acc & more",
      series: [
        {
          label: "private <ε=4>",
          points: [
            { x: 0, y: 0.1 },
            { x: 1, y: 0.5 },
            { x: 2, y: NaN },
            { x: 3, y: 0.9 },
          ],
        },
        {
          label: "baseline",
          dashed: true,
          color: 'red" onload="x',
          points: [
            { x: 0, y: 0.1 },
            { x: 3, y: 0.95 },
          ],
        },
        { label: "empty", points: [] },
      ],
      reference: { y: 0.92, label: "goal > 92%" },
    });
    assertWellFormed(svg);
    expect(svg).not.toContain("<script>");
    expect(svg).not.toContain("NaN");
    expect(svg).not.toContain('onload="x');
    expect(svg).toContain("Accuracy &lt;DP&gt; &amp; &quot;baseline&quot; &apos;q&apos;");
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray="6 4"');
  });

  it("handles a single point and a flat series without dividing by zero", () => {
    const svg = lineChartSvg({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      series: [{ label: "one", points: [{ x: 5, y: 0.5 }] }],
    });
    assertWellFormed(svg);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it("draws baselines across the plot, whiskers, a log x axis, and keeps the legend below the plot area", () => {
    const svg = lineChartSvg({
      title: "acc vs ε",
      xLabel: "ε",
      yLabel: "acc",
      series: [
        {
          label: "private",
          points: [
            { x: 0.5, y: 0.92, lo: 0.91, hi: 0.93 },
            { x: 8, y: 0.94, lo: 0.935, hi: 0.945 },
          ],
        },
      ],
      hlines: [
        { y: 0.915, label: "(a) public-only" },
        { y: 0.95, label: "(d) ceiling" },
      ],
      xLog: true,
      xTicks: [0.5, 1, 2, 4, 8],
      yPercent: true,
      yDomain: [0.9, 0.96],
    });
    assertWellFormed(svg);
    for (const t of ["0.5", ">8<", "(a) public-only", "(d) ceiling", "92%"]) expect(svg).toContain(t);
    // one path for the line, one per whisker; the two baselines are lines with the plot's full width
    expect(svg.match(/<path /g)).toHaveLength(3);
    expect(
      svg.match(/<line x1="70" x2="736" y1="[\d.]+" y2="[\d.]+" stroke="#[0-9a-f]+" stroke-width="2"/g),
    ).toHaveLength(2);
    // every legend label sits below the bottom of the plot area (height 400, bottom margin 58)
    const labelY = [...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)" font-size="12">/g)].map((m) => Number(m[1]));
    expect(labelY).toHaveLength(3);
    for (const y of labelY) expect(y).toBeGreaterThan(400 - 58);
  });
});
