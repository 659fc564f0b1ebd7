import { describe, expect, it } from "vitest";
import { barChart, formatTick, lineChart, linearScale, niceMax, plotArea, yTicks } from "./chart-geometry.ts";

const frame = { width: 300, height: 140, left: 40, right: 10, top: 10, bottom: 30 };

describe("chart geometry", () => {
  it("maps a domain onto a range, flipped when the range runs backwards", () => {
    const y = linearScale(0, 4, 110, 10);
    expect(y(0)).toBe(110);
    expect(y(4)).toBe(10);
    expect(y(1)).toBe(85);
    expect(linearScale(3, 3, 0, 10)(3)).toBe(5);
  });

  it("rounds axis maxima up to 1, 2, 2.5 or 5 × 10^k", () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(0.7)).toBe(1);
    expect(niceMax(1)).toBe(1);
    expect(niceMax(1.2)).toBe(2);
    expect(niceMax(2.2)).toBe(2.5);
    expect(niceMax(3)).toBe(5);
    expect(niceMax(8)).toBe(10);
    expect(niceMax(0.3)).toBe(0.5);
    expect(niceMax(1234)).toBe(2000);
    expect(() => niceMax(Number.NaN)).toThrow(RangeError);
  });

  it("places ticks evenly from the baseline to the top", () => {
    const area = plotArea(frame);
    expect(area).toEqual({ x0: 40, x1: 290, y0: 110, y1: 10 });
    expect(yTicks(2, area, 4)).toEqual([
      { value: 0, y: 110 },
      { value: 0.5, y: 85 },
      { value: 1, y: 60 },
      { value: 1.5, y: 35 },
      { value: 2, y: 10 },
    ]);
    // By default the ticks land on round steps.
    expect(yTicks(25, area).map((t) => t.value)).toEqual([0, 5, 10, 15, 20, 25]);
    expect(yTicks(2, area).map((t) => t.value)).toEqual([0, 0.5, 1, 1.5, 2]);
    expect(yTicks(5, area).map((t) => t.value)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(yTicks(0.1, area).map((t) => formatTick(t.value))).toEqual(["0", "0.02", "0.04", "0.06", "0.08", "0.1"]);
    expect(formatTick(0.30000000000000004)).toBe("0.3");
    expect(formatTick(1200)).toBe("1200");
  });

  it("spreads a line chart's points over the width and scales them to the axis maximum", () => {
    const g = lineChart([0.5, 1, 1.5], frame, 2);
    expect(g.yMax).toBe(2);
    expect(g.points.map((p) => [p.cx, p.cy])).toEqual([
      [40, 85],
      [165, 60],
      [290, 35],
    ]);
    expect(g.path).toBe("M40 85 L165 60 L290 35");
    // A value above the floor raises the axis.
    expect(lineChart([3.1], frame, 2).yMax).toBe(5);
    // One point sits in the middle.
    expect(lineChart([1], frame).points[0]!.cx).toBe(165);
    expect(lineChart([], frame).path).toBe("");
    expect(() => lineChart([Number.POSITIVE_INFINITY], frame)).toThrow(RangeError);
  });

  it("draws bars from the baseline, one per slot", () => {
    const g = barChart([10, 0, 5], { ...frame, width: 350 });
    expect(g.yMax).toBe(10);
    const slot = 300 / 3;
    expect(g.bars[0]).toMatchObject({ x: 40 + slot * 0.1, y: 10, width: slot * 0.8, height: 100 });
    expect(g.bars[1]).toMatchObject({ y: 110, height: 0 });
    expect(g.bars[2]).toMatchObject({ y: 60, height: 50 });
    expect(() => barChart([-1], frame)).toThrow(RangeError);
    expect(() => plotArea({ width: 20, height: 20 })).toThrow(RangeError);
  });
});
