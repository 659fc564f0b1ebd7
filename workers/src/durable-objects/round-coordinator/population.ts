/**
 * @module
 * `Population` owns the `population` table: the tenant that owns this population, recorded by its first round and
 * never changed. Only that tenant's API keys take part (check-ins, uploads). A population whose rounds predate tenants
 * has no row and belongs to the default tenant (the coordinator decides that, it knows the rounds).
 */
import type { CoordinatorHost } from "./host.ts";

export class Population {
  private readonly host: Pick<CoordinatorHost, "sql">;
  /** The recorded owner once read (it never changes). */
  private owner: string | null = null;

  constructor(host: Pick<CoordinatorHost, "sql">) {
    this.host = host;
  }

  /** The recorded owner, or null when none was recorded. */
  recordedOwner(): string | null {
    this.owner ??=
      this.host.sql.exec<{ tenant: string }>("SELECT tenant FROM population WHERE id = 1").toArray()[0]?.tenant ?? null;
    return this.owner;
  }

  /** Records the owner (a no-op once one is recorded). */
  setOwner(tenant: string): void {
    this.host.sql.exec("INSERT OR IGNORE INTO population (id, tenant) VALUES (1, ?)", tenant);
    this.owner = null;
  }
}
