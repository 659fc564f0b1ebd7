/**
 * @module
 * The RoundCoordinator's SQLite schema: its tables, created by the object's first write (opening a round, a
 * pushed revocation; `hasSchema` tells whether that happened), and the in-place upgrades of
 * tables an earlier version of the class created (state persisted under `.wrangler/state`, or a deployed object).
 *
 * - `rounds` (owned by `Rounds`): one row per round, with its counters, its payloads' seal and purge times, and (DP
 *   rounds) the noised values the aggregator reported it released (`dp_release`, JSON);
 * - `checkins` (`Checkins`): each device's recorded Poisson coin, nonce and keys for a round;
 * - `rounds.update_store_payloads`: 1 for rounds opened before the coordinator stored payloads (some may sit in the
 *   round's UpdateStore shards, which its seal and purge then visit too);
 * - `payload_parts`, `payload_sealed`, `payload_segments` (`Payloads`): the accepted payloads themselves, pending in
 *   SQLite or sealed into R2 segments;
 * - `updates` (`UpdateIndex`): each accepted update's metadata and its payload's name; `named_by` says what
 *   its `sha256` hashes: `signed_digest` (the bytes its signature covers, as `updateDigestHex`), or `body` (the whole
 *   body, for updates accepted before the edge named them by their signed digest);
 * - `revoked_devices` (`Revocations`): devices an admin revoked;
 * - `privacy_budget`, `privacy_charges` (`PopulationLedger`): the admin's budget and every round's charge.
 * - `population` (`Population`): the tenant that owns the population;
 * - `key_selections` (`Checkins`): how many devices of each API key the coin selected in a round;
 * - `sharding` (`Sharding`): the population's shard count S (on the population's object: the S its next round opens
 *   with; on a shard: the S it last heard of);
 * - `shard_terms` (`Sharding`, shards only): what a DP round charged, as the population's ledger recorded it, so the
 *   shard signs its devices' receipts without charging anything itself.
 */

/** Creates the tables that do not exist yet (the current schema). */
export function createTables(sql: SqlStorage): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS rounds (
    seq INTEGER PRIMARY KEY, round_id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, state TEXT NOT NULL,
    params TEXT NOT NULL, opened_at INTEGER NOT NULL, deadline INTEGER NOT NULL, closed_at INTEGER,
    close_reason TEXT, aggregated_at INTEGER, published_version INTEGER,
    checked_in INTEGER NOT NULL DEFAULT 0, selected INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
    sealed_at INTEGER, payloads_purged_at INTEGER, payloads_deleted_at INTEGER,
    shard_count INTEGER NOT NULL DEFAULT 1, shard_index INTEGER, shards_opened_at INTEGER, shards_settled_at INTEGER,
    dp_release TEXT, update_store_payloads INTEGER NOT NULL DEFAULT 0)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS checkins (
    round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, selected INTEGER NOT NULL, nonce TEXT, at INTEGER NOT NULL,
    public_key TEXT, api_key_id TEXT, PRIMARY KEY (round_seq, device_id))`);
  sql.exec(`CREATE TABLE IF NOT EXISTS updates (
    round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, n INTEGER NOT NULL, public_key TEXT NOT NULL,
    sha256 TEXT NOT NULL, byte_length INTEGER NOT NULL, storage_key TEXT NOT NULL, received_at INTEGER NOT NULL,
    named_by TEXT NOT NULL DEFAULT 'signed_digest', PRIMARY KEY (round_seq, device_id), UNIQUE (round_seq, n))`);
  sql.exec(`CREATE TABLE IF NOT EXISTS revoked_devices (device_id TEXT PRIMARY KEY, at INTEGER NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS privacy_budget (
    id INTEGER PRIMARY KEY CHECK (id = 1), epsilon REAL NOT NULL, delta REAL NOT NULL, accountant TEXT NOT NULL,
    set_at INTEGER NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS privacy_charges (
    round_seq INTEGER PRIMARY KEY, round_id TEXT NOT NULL UNIQUE, sampling_rate REAL NOT NULL,
    noise_multiplier REAL NOT NULL, count_noise_std REAL, privacy_mode TEXT NOT NULL, clip_rule TEXT NOT NULL,
    distributed_noise TEXT, charged_at INTEGER NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS population (id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS key_selections (
    round_seq INTEGER NOT NULL, api_key_id TEXT NOT NULL, selected INTEGER NOT NULL,
    PRIMARY KEY (round_seq, api_key_id))`);
  sql.exec(`CREATE TABLE IF NOT EXISTS sharding (
    id INTEGER PRIMARY KEY CHECK (id = 1), shards INTEGER NOT NULL, expected_devices INTEGER, set_at INTEGER NOT NULL)`);
  sql.exec(`CREATE TABLE IF NOT EXISTS payload_parts (
    round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (round_seq, device_id, part))`);
  sql.exec(`CREATE TABLE IF NOT EXISTS payload_sealed (
    round_seq INTEGER NOT NULL, device_id TEXT NOT NULL, segment TEXT NOT NULL, segment_offset INTEGER NOT NULL,
    byte_length INTEGER NOT NULL, PRIMARY KEY (round_seq, device_id))`);
  sql.exec(`CREATE TABLE IF NOT EXISTS payload_segments (
    round_seq INTEGER NOT NULL, n INTEGER NOT NULL, r2_key TEXT NOT NULL, PRIMARY KEY (round_seq, n))`);
  sql.exec(
    `CREATE TABLE IF NOT EXISTS shard_terms (round_seq INTEGER PRIMARY KEY, charge TEXT NOT NULL, delta REAL NOT NULL)`,
  );
}

/** Brings tables created by an earlier version of the class up to date (each step runs only when still needed). */
export function migrateColumns(sql: SqlStorage): void {
  const columns = (table: string) =>
    new Set(
      sql
        .exec<{ name: string }>(`PRAGMA table_info(${table})`)
        .toArray()
        .map((c) => c.name),
    );
  const rounds = columns("rounds");
  if (!rounds.has("payloads_purged_at")) sql.exec("ALTER TABLE rounds ADD COLUMN payloads_purged_at INTEGER");
  if (!rounds.has("payloads_deleted_at")) {
    sql.exec("ALTER TABLE rounds ADD COLUMN payloads_deleted_at INTEGER");
    // A purge recorded before the two steps existed was recorded once its deletes were done.
    sql.exec("UPDATE rounds SET payloads_deleted_at = payloads_purged_at WHERE payloads_purged_at IS NOT NULL");
  }
  if (!rounds.has("sealed_at")) {
    sql.exec("ALTER TABLE rounds ADD COLUMN sealed_at INTEGER");
    // Rounds closed before payloads went through UpdateStore are already in R2, one object per update.
    sql.exec("UPDATE rounds SET sealed_at = closed_at WHERE state NOT IN ('open', 'collecting')");
  }
  if (!rounds.has("shard_count")) {
    // Every round before shards ran on the population's one coordinator.
    sql.exec("ALTER TABLE rounds ADD COLUMN shard_count INTEGER NOT NULL DEFAULT 1");
    sql.exec("ALTER TABLE rounds ADD COLUMN shard_index INTEGER");
    sql.exec("ALTER TABLE rounds ADD COLUMN shards_opened_at INTEGER");
    sql.exec("ALTER TABLE rounds ADD COLUMN shards_settled_at INTEGER");
  }
  // Rounds finished before releases were reported have none (the dashboard shows nothing for them).
  if (!rounds.has("dp_release")) sql.exec("ALTER TABLE rounds ADD COLUMN dp_release TEXT");
  if (!rounds.has("update_store_payloads")) {
    // Rounds before the coordinator stored payloads itself kept them in their UpdateStore shards (and may still).
    sql.exec("ALTER TABLE rounds ADD COLUMN update_store_payloads INTEGER NOT NULL DEFAULT 0");
    sql.exec("UPDATE rounds SET update_store_payloads = 1");
  }
  const checkins = columns("checkins");
  if (!checkins.has("public_key")) sql.exec("ALTER TABLE checkins ADD COLUMN public_key TEXT");
  if (!checkins.has("api_key_id")) sql.exec("ALTER TABLE checkins ADD COLUMN api_key_id TEXT");
  // Distributed rounds record their discrete noise with the charge (earlier objects charged none: the column is null).
  const charges = columns("privacy_charges");
  if (charges.size > 0 && !charges.has("distributed_noise")) {
    sql.exec("ALTER TABLE privacy_charges ADD COLUMN distributed_noise TEXT");
  }
  if (columns("updates").has("r2_key")) sql.exec("ALTER TABLE updates RENAME COLUMN r2_key TO storage_key");
  // Updates were named by the SHA-256 of their whole body before they were named by their signed digest.
  if (!columns("updates").has("named_by")) {
    sql.exec("ALTER TABLE updates ADD COLUMN named_by TEXT NOT NULL DEFAULT 'body'");
  }
}

/** Whether this object ever created its tables (an object nobody opened a round in keeps no storage). */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rounds'").toArray().length > 0;
}

/** The schema the class expects: the tables created, then older ones upgraded. */
export function migrate(sql: SqlStorage): void {
  createTables(sql);
  migrateColumns(sql);
}
