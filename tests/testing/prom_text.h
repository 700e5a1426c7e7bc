#pragma once
// A strict reader of the Prometheus text exposition format 0.0.4, for tests of /metrics.

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kg::testing {

// One sample: name, labels (unescaped) and value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses one sample line; false on anything the format does not allow.
bool ParseSample(const std::string& line, Sample* out);

// Every line of a page: comments must be HELP or TYPE, samples must parse. `error` says
// what did not (and is left empty on success).
std::vector<Sample> ParseMetrics(const std::string& page, std::string* error);

// A family's declaration: its HELP text and TYPE.
struct Family {
  std::string help, type;
};
// The families a page declares, by name. `error` is set when a sample precedes its family's
// HELP and TYPE (a histogram's _bucket, _sum and _count belong to the histogram), or when a
// family is declared twice.
std::map<std::string, Family> Families(const std::string& page, std::string* error);

// The value of the sample `name` whose labels include all of `labels`; nullopt when there
// is none, and also when more than one matches.
std::optional<double> Value(const std::vector<Sample>& samples, const std::string& name,
                            const std::map<std::string, std::string>& labels = {});

}  // namespace kg::testing
