/**
 * @module
 * Accountants by name (after opacus `opacus/accountants/registry.py`).
 */
import { InvalidPrivacyParameterError, type Accountant, type AccountantMechanism } from "./accountant.ts";
import { PldAccountant, type PldAccountantOptions } from "./pld.ts";
import { RdpAccountant, type RdpAccountantOptions } from "./rdp.ts";

/** Options per mechanism. */
export interface AccountantOptionsByMechanism {
  rdp: RdpAccountantOptions;
  pld: PldAccountantOptions;
}

/** The registered mechanisms. */
export const ACCOUNTANT_MECHANISMS: readonly AccountantMechanism[] = Object.freeze(["rdp", "pld"]);

export function createAccountant(mechanism: "rdp", options?: RdpAccountantOptions): RdpAccountant;
export function createAccountant(mechanism: "pld", options?: PldAccountantOptions): PldAccountant;
export function createAccountant<M extends AccountantMechanism>(
  mechanism: M,
  options?: AccountantOptionsByMechanism[M],
): Accountant;
/** A new, empty accountant for `mechanism`; throws {@link InvalidPrivacyParameterError} on an unknown name. */
export function createAccountant(mechanism: string, options?: object): Accountant {
  switch (mechanism) {
    case "rdp":
      return new RdpAccountant(options as RdpAccountantOptions);
    case "pld":
      return new PldAccountant(options as PldAccountantOptions);
    default:
      throw new InvalidPrivacyParameterError(
        `unknown accountant "${mechanism}"; expected one of ${ACCOUNTANT_MECHANISMS.join(", ")}`,
      );
  }
}
