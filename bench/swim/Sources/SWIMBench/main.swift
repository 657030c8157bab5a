// SWIM simulation benchmark (issue 5, item 10): for each mesh size N and each
// preset (ours, `.lan`, and memberlist's LAN defaults, `.memberlistLAN`) in
// the same run, on MeshTestKit.SWIMSimulator (virtual time, one seed):
//
//   detection run (no loss, latency 1-2 ms), N - 1 nodes pre-converged:
//     warm-up 30 s (the first push-pull wave: initial push-pulls are staggered over 30 s)
//     at rest       bytes over one push-pull period (30 s x memberlist's pushPullScale(N))
//     join          node N-1 joins through node 0; time until every member holds it alive
//     settle 5 s
//     failure       node N/2 is killed; time until every running member holds it dead
//   loss run (10 % loss on every packet, latency 2-5 ms), N nodes pre-converged, D seconds:
//     false suspicions per member per hour = refutations / N / hours (each is a
//       live member learning it was suspected), false deaths = suspicion timeouts
//       on live members (every member is alive and reachable throughout)
//
// Usage: SWIMBench [--sizes 100,1000,5000,10000] [--seed 1] [--loss 100:600,1000:120,5000:60] [--detection yes|no]
//        (--loss N:SECONDS sets the loss-run length per size; sizes not listed get no loss run;
//        --detection no runs the loss runs only)
//
// Every simulated node holds the full member table, so memory grows as N²:
// about 90 bytes per member record (MeshSWIM's MemberTable: an 80-byte slot,
// 4 to 8 bytes of index, 4 of probe order): 9.7 GiB at N = 10,000. A size whose
// tables would not fit in 80 % of physical memory is reported as skipped.
// The loss run keeps no events, it counts them (SWIMSimulator.onEvent): under
// loss every member hears of nearly every suspicion.

import MeshBase
import MeshSWIM
import MeshTestKit
#if canImport(Glibc)
import Glibc
#endif

// MARK: Arguments

var sizes = [100, 1000, 5000, 10000]
var seed: UInt64 = 1
// No loss run at 10,000 by default: 60 s of it take 8 min of CPU for ours and
// 20 min and 21 GB for memberlist's (bench/swim-simulation.sh --sizes 10000 --detection no --loss 10000:60).
var lossSeconds: [Int: Int] = [100: 600, 1000: 120, 5000: 60]
var runDetection = true
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let a = args.removeFirst()
    guard let v = args.first else { fatalError("\(a) needs a value") }
    args.removeFirst()
    switch a {
    case "--sizes": sizes = v.split(separator: ",").map { Int($0)! }
    case "--seed": seed = UInt64(v)!
    case "--detection": runDetection = v == "yes"
    case "--loss":
        for p in v.split(separator: ",") {
            let kv = p.split(separator: ":").map { Int($0)! }
            lossSeconds[kv[0]] = kv[1]
        }
    default: fatalError("unknown argument \(a)")
    }
}

// MARK: Helpers

let wall = ContinuousClock()
let started = wall.now

func log(_ s: String) {
    let t = (wall.now - started)
    let secs = Double(t.components.seconds) + Double(t.components.attoseconds) / 1e18
    var line = "[\(fmt(secs, 1)) s wall, \(maxRSSMiB()) MiB] \(s)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// CPU seconds (user + system) of this process so far.
func cpuSeconds() -> Double {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

func maxRSSMiB() -> Int {
    var u = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
    return u.ru_maxrss / 1024
}

/// `x` with `digits` decimals.
func fmt(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (x * p).rounded() / p
    var s = "\(r)"
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if digits == 0 { s = String(s[..<dot]) } else if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else if digits > 0 { s += "." + String(repeating: "0", count: digits) }
    return s
}

func grouped(_ x: Int) -> String {
    let s = String(x)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return out
}

func isDead(_ e: MembershipEvent) -> Bool { if case .dead = e { return true } else { return false } }
func isJoined(_ e: MembershipEvent) -> Bool { if case .joined = e { return true } else { return false } }

/// The latest first-matching event about `subject` over every running node but `subject`, or nil if one has none yet.
func allSaw(_ sim: SWIMSimulator, _ subject: Int, since: Instant, _ match: (MembershipEvent) -> Bool) -> Instant? {
    var latest = since
    for o in sim.nodes.indices where o != subject && sim.node(o).isRunning {
        guard let t = sim.firstEvent(about: subject, seenBy: o, since: since, where: match) else { return nil }
        latest = max(latest, t)
    }
    return latest
}

/// Bytes per running member per second over `d`.
func rate(_ bytes: Int, members: Int, over d: Duration) -> Double { Double(bytes) / Double(members) / d.seconds }

// MARK: Measurements

struct Detection {
    var join: Double?            // seconds from join() to the last member holding the joiner alive
    var joinerKnowsAll: Double?  // seconds until the joiner holds every member alive
    var failure: Double?         // seconds from the kill to the last member holding the victim dead
    var firstDead: Double?
    var restBytes = 0.0, joinBytes = 0.0, failureBytes = 0.0
    var wrongDeaths = 0          // dead events about nodes that were running
}

struct LossRun {
    var seconds = 0
    var refutations = 0
    var suspectEvents = 0
    var deathsDeclared = 0
    var deadEvents = 0
    var bytes = 0.0
}

func detection(n: Int, config: SWIMConfig, seed: UInt64) -> Detection {
    var r = Detection()
    let sim = SWIMSimulator(nodes: n, config: config, seed: seed)
    let joiner = n - 1, victim = n / 2
    sim.assumeConverged(Array(0..<joiner))
    sim.run(for: .seconds(30))
    // At rest: one push-pull period, so every member's exchange is counted once.
    let window = Scaling.pushPullInterval(config.pushPullInterval, members: n - 1)
    var b0 = sim.stats.bytes
    sim.run(for: window)
    r.restBytes = rate(sim.stats.bytes - b0, members: n - 1, over: window)
    log("N=\(n) \(name(config)): at rest \(fmt(r.restBytes, 0)) B/member/s over \(fmt(window.seconds, 0)) s")

    // Join.
    let joinAt = sim.now
    b0 = sim.stats.bytes
    let joinerID = sim.node(joiner).id
    sim.join(joiner, seeds: [0])
    let done = sim.run(until: { s in (0..<joiner).allSatisfy { s.node($0).membership.member(joinerID)?.state == .alive } },
                       step: .milliseconds(20), timeout: .seconds(120))
    if done != nil, let t = allSaw(sim, joiner, since: joinAt, isJoined) {
        r.join = (t - joinAt).seconds
        r.joinBytes = rate(sim.stats.bytes - b0, members: n, over: max(t - joinAt, .milliseconds(1)))
    }
    let joinerSeesAll = sim.run(until: { s in s.node(joiner).membership.memberCount == n - 1 && s.node(joiner).membership.liveMemberCount == n - 1 },
                                step: .milliseconds(20), timeout: .seconds(60))
    if let j = joinerSeesAll { r.joinerKnowsAll = (j - joinAt).seconds }
    log("N=\(n) \(name(config)): join known everywhere after \(r.join.map { fmt($0, 3) } ?? "-") s, joiner knows all after \(r.joinerKnowsAll.map { fmt($0, 3) } ?? "-") s")
    sim.run(until: max(sim.now, joinAt + .seconds(5)))

    // Failure.
    sim.kill(victim)
    let killedAt = sim.now
    b0 = sim.stats.bytes
    let minimum = Scaling.suspicionTimeout(mult: config.suspicionMult, members: n, interval: config.probeInterval)
    let timeout = config.probeInterval * 2 + minimum * config.suspicionMaxTimeoutMult + .seconds(30)
    let dead = sim.run(until: { s in allSaw(s, victim, since: killedAt, isDead) != nil }, step: .milliseconds(100), timeout: timeout)
    if dead != nil, let t = allSaw(sim, victim, since: killedAt, isDead) {
        r.failure = (t - killedAt).seconds
        r.failureBytes = rate(sim.stats.bytes - b0, members: n - 1, over: t - killedAt)
        r.firstDead = sim.nodes.indices.filter { $0 != victim }
            .compactMap { sim.firstEvent(about: victim, seenBy: $0, since: killedAt, where: isDead) }.min().map { ($0 - killedAt).seconds }
    }
    for node in sim.nodes where node.isRunning {
        for (_, e) in node.events where isDead(e) && e.memberID != sim.node(victim).id { r.wrongDeaths += 1 }
    }
    log("N=\(n) \(name(config)): failure: first dead after \(r.firstDead.map { fmt($0, 3) } ?? "-") s, everywhere after \(r.failure.map { fmt($0, 3) } ?? "-") s")
    return r
}

func lossRun(n: Int, config: SWIMConfig, seconds: Int, seed: UInt64) -> LossRun {
    var r = LossRun()
    r.seconds = seconds
    let sim = SWIMSimulator(nodes: n, config: config, conditions: .init(loss: 0.10, latency: .milliseconds(2), jitter: .milliseconds(3)), seed: seed &+ 1000)
    sim.keepsEvents = false
    var suspectEvents = 0, deadEvents = 0
    sim.onEvent = { _, _, e in
        if case .suspect = e { suspectEvents += 1 }
        if isDead(e) { deadEvents += 1 }
    }
    sim.assumeConverged()
    let start = sim.now
    var elapsed = 0
    while elapsed < seconds {
        let step = min(60, seconds - elapsed)
        sim.run(for: .seconds(step))
        elapsed += step
        if n >= 5000 { log("N=\(n) \(name(config)): 10 % loss, \(elapsed) of \(seconds) s, \(grouped(suspectEvents)) suspect events so far") }
    }
    for node in sim.nodes {
        r.refutations += node.membership.counters.refutations
        r.deathsDeclared += node.membership.counters.deadDeclared
    }
    r.suspectEvents = suspectEvents
    r.deadEvents = deadEvents
    r.bytes = rate(sim.stats.bytes, members: n, over: sim.now - start)
    log("N=\(n) \(name(config)): 10 % loss, \(seconds) s: \(r.refutations) refutations, \(r.suspectEvents) suspect events, \(r.deathsDeclared) dead declarations, \(r.deadEvents) dead events; \(fmt(r.bytes, 0)) B/member/s")
    return r
}

/// Estimated bytes of N member tables of N - 1 records each (measured: 9.9 GB peak for the detection run at N = 10,000).
func tableBytes(_ n: Int) -> Double { Double(n) * Double(n - 1) * 100 }
func physicalMemory() -> Double { Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE))) }
func gb(_ b: Double) -> String { fmt(b / 1e9, 1) + " GB" }

func name(_ c: SWIMConfig) -> String { c == .lan ? "ours (.lan)" : c == .memberlistLAN ? "memberlist LAN" : "custom" }

// MARK: Run

let presets: [SWIMConfig] = [.lan, .memberlistLAN]
var lines: [String] = []
log("SWIM benchmark: sizes \(sizes), seed \(seed)")
var details: [String] = []
var costs: [String] = []
for n in sizes {
    if tableBytes(n) > 0.8 * physicalMemory() {
        let why = "skipped: \(grouped(n)) member tables of \(grouped(n - 1)) records need about \(gb(tableBytes(n))), this machine has \(gb(physicalMemory()))"
        log("N=\(n): " + why)
        lines.append("| \(grouped(n)) | both | \(why) | | | | | | |")
        continue
    }
    for config in presets {
        let c0 = cpuSeconds()
        let d: Detection? = runDetection ? detection(n: n, config: config, seed: seed) : nil
        let c1 = cpuSeconds()
        let seconds = lossSeconds[n] ?? 0
        let l: LossRun? = seconds > 0 ? lossRun(n: n, config: config, seconds: seconds, seed: seed) : nil
        let c2 = cpuSeconds()
        costs.append("| \(grouped(n)) | \(name(config)) | " + (d == nil ? "not run" : "\(fmt(c1 - c0, 0)) s") + " | " + (l == nil ? "not run" : "\(fmt(c2 - c1, 0)) s (\(seconds) s simulated)")
                     + " | \(grouped(maxRSSMiB())) MiB |")
        let period = config.probeInterval.seconds
        func t(_ x: Double?) -> String { x.map { "\(fmt($0, 2)) s (\(fmt($0 / period, 1)))" } ?? "not reached" }
        let suspicions = l.map { fmt(Double($0.refutations) / Double(n) / (Double($0.seconds) / 3600), 1) + " (\($0.seconds) s)" } ?? "not run"
        let deaths = l.map { "\($0.deathsDeclared)" } ?? "-"
        details.append("| \(grouped(n)) | \(name(config)) | "
                       + (d.map { "\($0.firstDead.map { fmt($0, 2) + " s" } ?? "-") | \($0.joinerKnowsAll.map { fmt($0, 2) + " s" } ?? "-") | \($0.wrongDeaths) | " } ?? "not run | | | ")
                       + (l.map { "\($0.refutations) | \(grouped($0.suspectEvents)) | \($0.deadEvents) | \(fmt($0.bytes, 0))" } ?? "- | - | - | -") + " |")
        let joinAndFailure = d.map { "\(t($0.join)) | \(t($0.failure))" } ?? "not run | not run"
        let bytes = d.map { "\(fmt($0.restBytes, 0)) | \(fmt($0.joinBytes, 0)) | \(fmt($0.failureBytes, 0))" } ?? "- | - | -"
        lines.append("| \(grouped(n)) | \(name(config)) | \(joinAndFailure) | \(suspicions) | \(deaths) | \(bytes) |")
    }
}

print("""

SWIM simulation, seed \(seed); times in seconds (in parentheses: protocol periods, the preset's probe interval); bytes are encodedSize per member per second.
Join: one node joins a converged mesh of N-1 through one seed, until every member holds it alive.
Failure: one node killed, until every running member holds it dead. False suspicions: 10 % loss, refutations per member per hour (loss-run length).

| N | preset | join known everywhere | failure known everywhere | false suspicions /member/h | false deaths | B/member/s at rest | during join | during failure |
|---|---|---|---|---|---|---|---|---|
""")
for l in lines { print(l) }
print("""

Details: first dead declaration after the kill; when the joiner itself held every member alive; dead events about running
nodes in the no-loss run; in the loss run: refutations, suspect events (summed over observers), dead events, B/member/s.

| N | preset | first dead | joiner knows all | wrong deaths, no loss | loss: refutations | suspect events | dead events | B/member/s under loss |
|---|---|---|---|---|---|---|---|---|
""")
for l in details { print(l) }
print("""

Cost on this machine: CPU seconds of the detection run (30 s warm-up, one push-pull period at rest, join, failure) and of
the loss run; peak resident memory of the process so far (sizes run in the order given).

| N | preset | detection run CPU | loss run CPU | peak RSS so far |
|---|---|---|---|---|
""")
for l in costs { print(l) }
