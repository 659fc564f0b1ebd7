/**
 * @module
 * RoundCoordinator: one per training population; owns the round lifecycle.
 */
import { DurableObject } from "cloudflare:workers";
import type { Bindings } from "../env.ts";

export class RoundCoordinator extends DurableObject<Bindings> {}
