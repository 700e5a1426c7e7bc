// kgflow: main() only wires the command line to the components.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/client.h"
#include "cli/node.h"
#include "config/config.h"
#include "eval/command.h"
#include "log/json_formatter.h"
#include "supervisor/supervisor.h"
#include "worker/worker.h"

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitUsage = 2;

// Loads the configuration or prints one line naming the bad variable. `role`, if set, stands for
// NODE_ROLE: "worker" for `kgflow worker`; "web" for a client command, which reads only the
// node's limits and so needs no provider's API key.
std::optional<kg::Config> LoadOrExplain(const char* role = nullptr) {
  auto env = kg::ProcessEnv();
  kg::EnvLookup lookup = env;
  if (role) {
    lookup = [env, role](const std::string& name) -> std::optional<std::string> {
      if (name == "NODE_ROLE") return std::string(role);
      return env(name);
    };
  }
  auto c = kg::LoadConfig(lookup);
  if (!c.ok()) {
    std::cerr << "kgflow: configuration error: " << c.status().message() << "\n";
    return std::nullopt;
  }
  return std::move(c).value();
}

// `provider`: the provider a worker process serves ("" for a node), for JSON lines.
void SetupLogging(const kg::Config& c, const std::string& provider = "") {
  auto logger = spdlog::stderr_color_mt("kgflow");
  kg::SetLogFormat(*logger, c.log_format, c.node_name, provider);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(c.log_level));
}

std::string DefaultUrl() {
  const char* addr = std::getenv("KG_HTTP_ADDR");
  std::string a = addr && *addr ? addr : "127.0.0.1:8080";
  if (a.rfind("0.0.0.0:", 0) == 0) a = "127.0.0.1:" + a.substr(8);
  return "http://" + a;
}

// The first word after `app`'s own options must name one of its subcommands; CLI11 alone
// says "A subcommand is required" for `kgflow frobnicate`. Returns "" when `word` is known.
std::string UnknownCommand(CLI::App& app, const std::string& word, const std::string& where) {
  std::string names;
  for (const CLI::App* c : app.get_subcommands([](const CLI::App* a) { return !a->get_name().empty(); })) {
    if (c->get_name() == word) return "";
    if (!c->get_group().empty()) names += (names.empty() ? "" : ", ") + c->get_name();
  }
  return "kgflow: unknown command '" + where + word + "'; commands: " + names + " (see --help)";
}

int Main(int argc, char** argv);

}  // namespace

// Every failure is a message and an exit code, never an uncaught exception (exit 134):
// 0 ok, 1 runtime failure, 2 usage or configuration.
int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kgflow: internal error: " << e.what() << "\n";
    return 1;
  }
}

namespace {

int Main(int argc, char** argv) {
  // The worker subcommand is internal and hot (spawn latency): handle it before CLI11.
  if (argc >= 2 && std::string(argv[1]) == "__worker") {
    kg::WorkerOptions o;
    for (int i = 2; i + 1 < argc; i += 2) {
      std::string k = argv[i], v = argv[i + 1];
      if (k == "--provider") o.provider = v;
      else if (k == "--owner") o.owner = v;
      else if (k == "--parent-pid") o.parent_pid = static_cast<pid_t>(std::stol(v));
      else if (k == "--status-fd") o.status_fd = std::stoi(v);
    }
    auto c = LoadOrExplain();
    if (!c) return kExitConfig;
    SetupLogging(*c, o.provider);
    return kg::RunWorker(*c, o);
  }

  CLI::App app{"kgflow: build knowledge graphs from documents with LLMs, on one machine or many"};
  app.set_version_flag("--version", std::string("kgflow ") + KG_VERSION);
  app.require_subcommand(1);
  kg::ClientOptions client{DefaultUrl(), std::getenv("KG_API_TOKEN") ? std::getenv("KG_API_TOKEN") : ""};
  // --url before the command (`kgflow --url X tasks`) or after it.
  app.add_option("--url", client.url, "API base URL (default http://$KG_HTTP_ADDR)");
  auto add_url = [&](CLI::App* cmd) {
    cmd->add_option("--url", client.url, "API base URL (default http://$KG_HTTP_ADDR)");
  };

  auto* start = app.add_subcommand("start", "Run a node: web API and/or worker supervisor, as NODE_ROLE says");
  auto* worker = app.add_subcommand("worker", "Run a worker node: the supervisor and its workers, no web API");

  std::vector<std::string> files;
  kg::SubmitOptions so;
  auto* submit = app.add_subcommand("submit", "Submit documents (files, or - for stdin) as tasks");
  submit->add_option("files", files, "FILE... or -")->required();
  submit->add_option("--provider", so.provider, "provider to extract with (default: the first enabled)");
  submit->add_option("--title", so.title, "title (default: the file name)");
  submit->add_option("--format", so.format, "text|markdown|html (default: by extension, .md .markdown .html .htm)")
      ->check(CLI::IsMember({"text", "markdown", "html"}));
  submit->add_flag("--wait", so.wait, "wait for the tasks to finish, showing progress (reconnects if the node restarts)");
  submit->add_option("--reconnect-timeout", so.reconnect_seconds,
                     "with --wait: seconds to keep reconnecting to a node that went away (default 60)")
      ->check(CLI::Range(1, 86400));
  submit->add_flag("--recursive,-r", so.recursive, "submit the text files under a directory (others are skipped)");
  submit->add_flag("--batch", so.batch, "send every document in one batch request (all or none; each file read whole)");
  submit->add_option("--token-budget", so.token_budget,
                     "LLM tokens (prompt + completion) each task may spend before it is stopped (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  add_url(submit);

  std::string task_id, status_filter;
  int limit = 50;
  auto* tasks = app.add_subcommand("tasks", "List tasks, or show one");
  tasks->add_option("id", task_id, "task id");
  tasks->add_option("--status", status_filter, "queued|running|done|failed|cancelled")
      ->check(CLI::IsMember({"queued", "running", "done", "failed", "cancelled"}));
  tasks->add_option("--limit", limit, "how many")->check(CLI::Range(1, 1000));
  add_url(tasks);

  auto* workers = app.add_subcommand("workers", "List nodes and their worker processes");
  add_url(workers);

  auto* cancel = app.add_subcommand("cancel", "Cancel an unfinished task");
  cancel->add_option("id", task_id, "task id")->required();
  add_url(cancel);
  auto* retry = app.add_subcommand("retry", "Queue a failed or cancelled task's chunks again");
  retry->add_option("id", task_id, "task id")->required();
  add_url(retry);

  std::string scale_provider;
  int scale_n = 0;
  bool scale_reset = false;
  auto* scale = app.add_subcommand(
      "scale", "Set worker processes per node for a provider (clamped to the caps; overrides "
               "KG_WORKERS_PER_PROVIDER on every node, across restarts, until --reset)");
  scale->add_option("provider", scale_provider, "provider name")->required();
  auto* scale_n_opt = scale->add_option("n", scale_n, "processes per node")->check(CLI::Range(0, 100000));
  auto* scale_reset_flag =
      scale->add_flag("--reset", scale_reset, "remove the override: back to KG_WORKERS_PER_PROVIDER");
  scale_n_opt->excludes(scale_reset_flag);
  int scale_timeout = 30;
  scale->add_option("--timeout", scale_timeout, "seconds to wait for the node to run the target (default 30)")
      ->check(CLI::Range(1, 3600));
  add_url(scale);

  auto* graph = app.add_subcommand("graph", "Query the graph");
  graph->require_subcommand(1);
  auto* gstats = graph->add_subcommand("stats", "Counts of documents, chunks, entities, relations");
  std::string query;
  auto* gsearch = graph->add_subcommand("search", "Find entities by name");
  gsearch->add_option("q", query, "text to look for")->required();
  gsearch->add_option("--limit", limit, "how many")->check(CLI::Range(1, 1000));
  std::string format = "json";
  auto* gexport = graph->add_subcommand("export", "Export the whole graph");
  gexport->add_option("--format", format, "json|graphml")->check(CLI::IsMember({"json", "graphml"}));
  std::string entity_key;
  auto* gentity = graph->add_subcommand("entity", "Show one entity: neighbours and provenance");
  gentity->add_option("key", entity_key, "entity key, TYPE:NAME as search --json shows it")->required();
  for (auto* c : {gstats, gsearch, gexport, gentity}) add_url(c);
  for (auto* c : {tasks, workers, gstats, gsearch, gentity}) {
    c->add_flag("--json", client.json, "print the API's JSON as is");
  }

  auto* check = app.add_subcommand("check-config", "Print the effective configuration (secrets masked)");

  kg::eval::EvalOptions eval_opts;
  auto* eval = app.add_subcommand("eval", "Score a provider's extraction against a labelled file (docs/eval.md)");
  eval->add_option("gold", eval_opts.gold_file, "GOLD.jsonl: one labelled item per line")->required();
  eval->add_option("--provider", eval_opts.provider, "provider of this configuration to score (default builtin)");
  eval->add_flag("--json", eval_opts.json, "print the whole report as JSON");
  eval->add_option("--max-misses", eval_opts.max_misses, "miss lines to print (default 30)")
      ->check(CLI::Range(0, 1000000));

  // Unknown commands are named (checked before CLI11, whose message would not say which).
  // The command is the first word after the global --url, if that comes first.
  int first = 1;
  while (first < argc && std::string(argv[first]).rfind("--url", 0) == 0) {
    first += std::string(argv[first]) == "--url" ? 2 : 1;
  }
  if (first < argc && argv[first][0] == '-') {
    std::string opt = argv[first];
    if (opt != "-h" && opt != "--help" && opt != "--version") {
      std::cerr << "kgflow: unknown option '" << opt << "' before the command; the options before it are "
                << "--url, --help and --version (see --help)\n";
      return kExitUsage;
    }
  }
  if (first < argc && argv[first][0] != '-') {
    if (auto e = UnknownCommand(app, argv[first], ""); !e.empty()) {
      std::cerr << e << "\n";
      return kExitUsage;
    }
    if (std::string(argv[first]) == "graph" && first + 1 < argc && argv[first + 1][0] != '-') {
      if (auto e = UnknownCommand(*graph, argv[first + 1], "graph "); !e.empty()) {
        std::cerr << e << "\n";
        return kExitUsage;
      }
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0; every real parse error is usage (2),
    // not CLI11's own codes (105 for a value outside a set, ...).
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  bool remote = submit->parsed() || tasks->parsed() || workers->parsed() || scale->parsed() || gstats->parsed() ||
                gsearch->parsed() || gexport->parsed() || gentity->parsed() || cancel->parsed() || retry->parsed();
  if (remote) {
    // A blank token (an empty line in a secret file) would be sent as "Bearer " and refused.
    if (!client.token.empty() && client.token.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
      std::cerr << "kgflow: configuration error: KG_API_TOKEN is set but blank (only white space); set a token or "
                   "unset it\n";
      return kExitConfig;
    }
    std::string note;
    if (kg::Status s = kg::NormalizeUrl(&client.url, &note); !s.ok()) {
      std::cerr << "kgflow: " << s.message() << "\n";
      return kExitUsage;
    }
    if (!note.empty()) std::cerr << note << "\n";
  }

  if (*start || *worker) {
    kg::BlockSupervisorSignals();  // before any thread exists
    auto c = LoadOrExplain(worker->parsed() ? "worker" : nullptr);
    if (!c) return kExitConfig;
    SetupLogging(*c);
    return kg::RunNode(*c);
  }
  if (*eval) {
    auto c = LoadOrExplain();
    if (!c) return kExitConfig;
    return kg::eval::RunEval(*c, eval_opts, std::cout, std::cerr);
  }
  if (*check) {
    auto c = LoadOrExplain();
    if (!c) return kExitConfig;
    std::cout << kg::DescribeConfig(*c);
    return 0;
  }
  if (*submit) {
    auto c = LoadOrExplain("web");  // the body limit the node applies (KG_MAX_BODY_MB)
    if (!c) return kExitConfig;
    so.max_bytes = int64_t{c->max_body_mb} * 1048576;
    return kg::CmdSubmit(client, files, so);
  }
  if (*tasks) return kg::CmdTasks(client, task_id, status_filter, limit);
  if (*workers) return kg::CmdWorkers(client);
  if (*scale) {
    if (!scale_reset && scale_n_opt->count() == 0) {
      std::cerr << "scale: give the processes per node, or --reset\n";
      return kExitConfig;
    }
    return scale_reset ? kg::CmdScaleReset(client, scale_provider) : kg::CmdScale(client, scale_provider, scale_n, scale_timeout);
  }
  if (*gstats) return kg::CmdGraphStats(client);
  if (*gsearch) return kg::CmdGraphSearch(client, query, limit);
  if (*gexport) return kg::CmdGraphExport(client, format);
  if (*gentity) return kg::CmdGraphEntity(client, entity_key);
  if (*cancel) return kg::CmdCancel(client, task_id);
  if (*retry) return kg::CmdRetry(client, task_id);
  return 0;
}

}  // namespace
