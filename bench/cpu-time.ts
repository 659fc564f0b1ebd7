/**
 * @module
 * CPU time of the local edge's workerd (all its threads, Linux `/proc/<pid>/task/<tid>/schedstat`, ns) and of this
 * Node process (`process.cpuUsage()`), for compute benchmarks on a shared machine: wall time there mostly measures the
 * other tenants, CPU time the work itself.
 */
import { readdirSync, readFileSync } from "node:fs";

const timedWall = async (fn: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

/** CPU time (ns) of every thread of the workerd processes in process group `pgid` (Linux `schedstat`). */
export function workerdCpuNs(pgid: number): number {
  let total = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (!comm.startsWith("workerd") || Number(fields[2]) !== pgid) continue;
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      }
    } catch {
      /* the process or thread ended meanwhile */
    }
  }
  return total;
}

/** Wall ms and workerd CPU ms of one request. */
export async function cpuTimed(pgid: number, fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = workerdCpuNs(pgid);
  const wall = await timedWall(fn);
  return { wall, cpu: (workerdCpuNs(pgid) - c0) / 1e6 };
}

/** Node process CPU ms and wall ms of `fn`. */
export async function nodeCpuTimed(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const wall = await timedWall(fn);
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e3 };
}
