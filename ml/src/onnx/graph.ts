/**
 * @module
 * Small helpers for building and walking ONNX graphs (nodes, attributes, value infos), shared by the quantizer and the
 * model builders. Pure: they only create and read `ModelProto` objects.
 */
import { OnnxAttributeType, OnnxDataType } from "./descriptor.ts";
import type { AttributeProto, GraphProto, NodeProto, TensorProto, ValueInfoProto } from "./types.ts";

/** Attribute constructors with their ONNX `type` set. */
export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: OnnxAttributeType.INT, i }),
  ints: (name: string, ints: readonly number[]): AttributeProto => ({
    name,
    type: OnnxAttributeType.INTS,
    ints: [...ints],
  }),
  float: (name: string, f: number): AttributeProto => ({ name, type: OnnxAttributeType.FLOAT, f }),
  string: (name: string, s: string): AttributeProto => ({
    name,
    type: OnnxAttributeType.STRING,
    s: new TextEncoder().encode(s),
  }),
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: OnnxAttributeType.TENSOR, t }),
};

/** A node of the default (`ai.onnx`) domain. */
export function node(
  opType: string,
  input: readonly string[],
  output: readonly string[],
  options: { name?: string; attribute?: AttributeProto[]; domain?: string } = {},
): NodeProto {
  return {
    opType,
    input: [...input],
    output: [...output],
    name: options.name ?? `${output[0] ?? opType}/${opType}`,
    ...(options.attribute?.length ? { attribute: options.attribute } : {}),
    ...(options.domain ? { domain: options.domain } : {}),
  };
}

/** A tensor `ValueInfoProto`: numbers are fixed dims, strings symbolic ones, `null` unknown ones. */
export function tensorValueInfo(
  name: string,
  elemType: number,
  dims: readonly (number | string | null)[],
): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : d === null ? {} : { dimParam: d })) },
      },
    },
  };
}

/** A float32 tensor value info (the common case). */
export function floatValueInfo(name: string, dims: readonly (number | string | null)[]): ValueInfoProto {
  return tensorValueInfo(name, OnnxDataType.FLOAT, dims);
}

/** The integer attribute `name` of a node, or `fallback`. */
export function intAttr(n: NodeProto, name: string, fallback: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.i ?? fallback;
}

/** Whether a node belongs to the default ONNX operator domain. */
export function isDefaultDomain(n: NodeProto): boolean {
  return !n.domain || n.domain === "ai.onnx";
}

/** Calls `fn` on `graph` and on every subgraph nested in node attributes (If/Loop/Scan bodies), depth first. */
export function forEachGraph(graph: GraphProto, fn: (g: GraphProto) => void): void {
  fn(graph);
  for (const n of graph.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.g) forEachGraph(a.g, fn);
      for (const g of a.graphs ?? []) forEachGraph(g, fn);
    }
  }
}
