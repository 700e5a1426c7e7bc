#include "cli/node.h"

#include <signal.h>
#include <sys/resource.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <thread>

#include "api/server.h"
#include "common/util.h"
#include "graph/graph_store.h"
#include "http/client.h"
#include "llm/prompt.h"
#include "queue/queue.h"
#include "store/task_store.h"
#include "supervisor/node_registry.h"
#include "supervisor/supervisor.h"
#include "systemd/notifier.h"

namespace kg {

void LogBanner(const Config& c, const std::string& what) {
  spdlog::info("kgflow {} {} | node={} role={} pid={}", KG_VERSION, what, c.node_name, RoleName(c.role), getpid());
  for (const auto& p : c.enabled_providers) {
    spdlog::info("  provider {}: {} per node, cap {} per provider, {} chunks at once per process; {}", p,
                 c.workers_per_provider, c.max_processes_per_provider, ConcurrencyOf(c, c.providers.at(p)),
                 DescribeProvider(c.providers.at(p)));
  }
  spdlog::info("  caps: {} processes in total, {} per provider", c.max_total_processes, c.max_processes_per_provider);
  BackendDescription backends = DescribeBackends(c);
  spdlog::info("  queue: {} | task store: {} | graph: {}", backends.queue, backends.task_store, backends.graph);
}

namespace {

// The cluster's Neo4j connection budget (nodes x processes x pool), and a warning when it
// would pass what the server accepts: the seed's "connection pool exhausted" seen coming.
// A node without NEO4J_URI publishes a share of 0, so a name once used by a Neo4j node does not
// keep counting in the cluster's figure.
void ReportNeo4jBudget(const Config& c, TaskStore& store) {
  auto budget = PublishNeo4jShare(c, store);
  if (c.neo4j_uri.empty()) return;
  if (!budget.ok()) {
    spdlog::warn("neo4j: could not publish this node's connection budget: {}", budget.status().message());
    return;
  }
  const int processes = c.neo4j_pool_size > 0 ? budget->node / c.neo4j_pool_size : 0;
  spdlog::info("  neo4j connections: this node up to {} ({} processes x KG_NEO4J_POOL_SIZE {}); the cluster up to {} "
               "over {} node(s); KG_NEO4J_MAX_CONNECTIONS {}",
               budget->node, processes, c.neo4j_pool_size, budget->cluster, budget->nodes, c.neo4j_max_connections);
  if (c.neo4j_max_connections > 0 && budget->cluster > c.neo4j_max_connections) {
    spdlog::warn("neo4j: the cluster may open up to {} Bolt connections ({} from this node), more than "
                 "KG_NEO4J_MAX_CONNECTIONS={}: lower KG_NEO4J_POOL_SIZE or KG_MAX_TOTAL_PROCESSES, or raise the "
                 "server's limit (server.bolt.thread_pool_max_size) and this setting",
                 budget->cluster, budget->node, c.neo4j_max_connections);
  }
}

std::string SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "kgflow";
  return std::string(buf, static_cast<size_t>(n));
}

// Open connections cost a descriptor each: take the hard limit the system grants (the soft
// default, often 1024, would cap the API far below KG_HTTP_MAX_CONNECTIONS).
void RaiseDescriptorLimit(const Config& c) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &r);
  }
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < static_cast<rlim_t>(c.http_max_connections) + 256) {
    spdlog::warn("the descriptor limit ({}) is below KG_HTTP_MAX_CONNECTIONS={} plus room for the node's own files; "
                 "raise `ulimit -n` or lower the setting",
                 r.rlim_cur, c.http_max_connections);
  }
}

// The watchdog's probes (see SystemdNotifier): the guard loop turned lately, and the HTTP event
// loop answers /healthz (an inline route: it runs on the event loop itself, so any answer, even a
// 503 at the connection cap, proves the loop turns).
std::vector<SystemdNotifier::Probe> WatchdogProbes(const SystemdNotifier& notifier, const Supervisor* supervisor,
                                                   std::string host, int port) {
  std::vector<SystemdNotifier::Probe> probes;
  const int64_t period = std::max<int64_t>(1, notifier.watchdog_ms() / 4);
  if (supervisor) {
    // The loop turns at least every kGuardMaxIdleTurnMs; allow that and a margin, or half the
    // watchdog interval if that is longer.
    const int64_t max_gap = std::max(notifier.watchdog_ms() / 2, Supervisor::kGuardMaxIdleTurnMs + 5000);
    probes.push_back({"guard loop", [supervisor, max_gap]() -> std::string {
                        int64_t gap = MonoMs() - supervisor->LastTurnMs();
                        if (gap <= max_gap) return "";
                        return fmt::format("no turn for {} ms (it turns at least every {} ms)", gap,
                                           Supervisor::kGuardMaxIdleTurnMs);
                      }});
  }
  // The listener's own address; a wildcard is reached on loopback.
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::" || host == "[::]") host = "::1";
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  std::string url = fmt::format("http://{}:{}", host, port);
  // One slow answer (a loaded host) is no hang: the probe gives up within half a ping period, so
  // the pings keep their pace, and it fails only once /healthz has not answered for half the
  // watchdog interval (as the guard probe allows its max_gap), the other half being systemd's
  // margin. Connect and read share the half period: on loopback the request is written at once
  // and the small answer comes in one read.
  const int64_t step = std::max<int64_t>(1, period / 4);
  const int64_t http_max_gap = notifier.watchdog_ms() / 2;
  // Mutable state (the last answer) is fine: the notifier calls a probe from its thread only.
  auto http_probe = [url, step, http_max_gap, last_ok = MonoMs()]() mutable -> std::string {
    http::ClientOptions o;
    o.connect_timeout = std::chrono::milliseconds(step);
    o.read_timeout = std::chrono::milliseconds(step);
    http::Client client(url, o);
    auto r = client.Send("GET", "/healthz");
    int64_t now = MonoMs();
    if (r.ok()) last_ok = now;
    if (now - last_ok <= http_max_gap) return "";
    return fmt::format("GET {}/healthz: {} (no answer for {} ms)", url, r.status().message(),
                       now - last_ok);
  };
  probes.push_back({"HTTP event loop", std::move(http_probe)});
  return probes;
}

}  // namespace

int RunNode(const Config& c) {
  // Type=notify under systemd (deploy/systemd/); does nothing elsewhere.
  SystemdNotifier notifier;
  notifier.Status("starting: opening the backends");
  LogBanner(c, c.role == NodeRole::kWorker ? "worker node" : "node");
  RaiseDescriptorLimit(c);
  // One backend after the other, stopping at the first that cannot be opened (a server still down
  // after the factories' wait): its error is the one to read, and the next backend (often the same
  // MySQL server) is not waited for a second time.
  // A refused login or database (kInvalidArgument) is a configuration error: exit 2, as for a bad
  // variable; a server that stays away is a runtime failure: exit 1.
  auto fail = [](const Status& s) {
    spdlog::error("{}", s.message());
    return s.code() == Code::kInvalidArgument ? 2 : 1;
  };
  // A worker would fail its set-up on a prompt file that does not parse, again and again: say it
  // once, here, as the configuration error it is.
  if (c.role != NodeRole::kWeb) {
    for (const auto& name : c.enabled_providers) {
      const ProviderConfig& p = c.providers.at(name);
      if (p.kind == "builtin" || p.prompt_file.empty()) continue;
      if (auto prompt = llm::LoadPrompt(p.prompt_file); !prompt.ok()) {
        return fail(Status::Invalid("provider " + name + " prompt_file: " + prompt.status().message()));
      }
    }
  }
  auto queue = OpenQueue(c);
  if (!queue.ok()) return fail(queue.status());
  auto store = OpenTaskStore(c);
  if (!store.ok()) return fail(store.status());
  auto graph = OpenGraphStore(c);
  if (!graph.ok()) return fail(graph.status());
  for (const auto& w : QueueDurabilityWarnings(c)) spdlog::warn("{}", w);
  // The node's name first, before anything runs: a live node holding it refuses this one
  // (a configuration problem: exit 2, naming the variable and the holder).
  NodeRegistry registry(c, *store.value());
  if (Status claimed = registry.Claim(); !claimed.ok()) {
    spdlog::error("{}", claimed.message());
    return claimed.code() == Code::kConflict ? 2 : 1;
  }
  ReportNeo4jBudget(c, *store.value());
  // The API and the supervisor each have their own connections (the supervisor opens its own).
  std::unique_ptr<Supervisor> supervisor;
  if (c.role != NodeRole::kWeb) {
    auto s = Supervisor::Create(c, SelfExe());
    if (!s.ok()) {
      spdlog::error("{}", s.status().message());
      (void)registry.Remove();
      return 1;
    }
    supervisor = std::move(s).value();
  } else {
    spdlog::info("role web: this node runs no worker processes");
  }

  ApiDeps deps{&c, queue->get(), store->get(), graph->get(), supervisor.get(), c.role == NodeRole::kWorker};
  ApiServer api(deps);
  std::string host;
  int port = 0;
  (void)ParseHostPort(c.role == NodeRole::kWorker ? c.health_addr : c.http_addr, &host, &port);
  auto bound = api.Bind(host, port);
  if (!bound.ok()) {
    spdlog::error("{} ({})", bound.status().message(), c.role == NodeRole::kWorker ? "KG_HEALTH_ADDR" : "KG_HTTP_ADDR");
    (void)registry.Remove();
    return 1;
  }
  std::unique_ptr<TaskStore> beat_store;  // a web node's registry beats (see below)
  if (!supervisor) {
    auto opened = OpenTaskStore(c);
    if (!opened.ok()) {
      spdlog::error("{}", opened.status().message());
      (void)registry.Remove();
      return 1;
    }
    beat_store = std::move(opened).value();
  }
  // A beat that finds the name taken over by another node (its beats were late) stops this
  // node: the graceful stop below, as for SIGTERM, then exit 2. It never claims the name back.
  std::atomic<bool> name_lost{false};
  auto on_name_lost = [&name_lost](const Status& why) {
    if (name_lost.exchange(true)) return;
    spdlog::error("{}; stopping this node (exit {})", why.message(), kExitNameTakenOver);
    kill(getpid(), SIGTERM);  // the signal loop below runs the graceful stop
  };
  if (supervisor) supervisor->Start(on_name_lost);
  std::thread http([&] { api.Serve(); });
  pthread_setname_np(http.native_handle(), "kg-http");  // the HTTP event loop (top -H, the watchdog test)
  std::atomic<bool> stopped{false};
  // A web-only node has no supervisor; it still shows up in the node registry, beating on a
  // connection of its own (a beat waiting out a locked store must not hold up the API's).
  std::unique_ptr<NodeHeartbeat> web_beat;
  if (beat_store) web_beat = std::make_unique<NodeHeartbeat>(c, *beat_store, on_name_lost);
  spdlog::info("{} listening on http://{}:{}", c.role == NodeRole::kWorker ? "health endpoint" : "API", host, *bound);
  // Machine-readable line for scripts and tests that asked for port 0.
  fmt::print(stdout, "KGFLOW_LISTENING http://{}:{}\n", host, *bound);
  std::fflush(stdout);
  // Ready: the listener is bound (connections queue from now on) and the guard runs.
  notifier.Ready(fmt::format("node {} (role {}) serving on {}:{}{}", c.node_name, RoleName(c.role), host, *bound,
                             supervisor ? "; supervisor running" : ""));
  notifier.StartWatchdog(WatchdogProbes(notifier, supervisor.get(), host, *bound));

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  int signals = 0;
  std::thread stopper;
  while (true) {
    siginfo_t info;
    if (sigwaitinfo(&set, &info) < 0) continue;
    if (info.si_signo == SIGHUP) {
      if (stopped.load()) break;
      continue;
    }
    // Our own stop request after a lost name, while a stop already runs: not a second signal.
    if (info.si_pid == getpid() && name_lost.load() && signals > 0) continue;
    ++signals;
    if (signals == 1) {
      spdlog::info("received {}; stopping gracefully (again to stop at once)", sigabbrev_np(info.si_signo));
      notifier.Stopping(fmt::format("stopping gracefully on {}: draining in-flight work", sigabbrev_np(info.si_signo)));
      // The stop sequence orchestrators expect: stop taking work at once (/readyz 503, new
      // tasks 503 + Retry-After), drain the in-flight chunks, then close the API.
      api.StopTakingWork();
      if (supervisor) supervisor->Stop(false);
      stopper = std::thread([&] {
        if (supervisor) supervisor->Wait();
        api.Stop();
        stopped.store(true);
        kill(getpid(), SIGHUP);  // wakes sigwaitinfo
      });
    } else if (info.si_signo == SIGINT || info.si_signo == SIGTERM) {
      spdlog::warn("second {}: cold stop", sigabbrev_np(info.si_signo));
      if (supervisor) supervisor->Stop(true);
    }
  }
  stopper.join();
  http.join();
  notifier.StopWatchdog();  // before the supervisor its probe reads goes away
  web_beat.reset();
  (void)registry.Remove();  // a no-op once the name is another node's
  if (name_lost.load()) {
    spdlog::error("stopped: KG_WORKER_NODE_NAME='{}' belongs to another node now; exit {}", c.node_name,
                  kExitNameTakenOver);
    return kExitNameTakenOver;
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace kg
