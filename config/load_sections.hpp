// Internal to config/: the loaders of the config's larger sections, which loader.cpp calls.
#pragma once

#include <string>

#include "config/model.hpp"
#include "config/yaml_reader.hpp"

namespace ingestd::config::detail {

/// datasets.NAME (load_dataset.cpp): format, csv options, entities, fields, normalizers,
/// lookups, and the checks within one dataset.
Dataset load_dataset(Reader& r, const Entry& e, const std::string& path);

/// `kind:` of datasets.NAME (load_documents.cpp): true for `documents`.
bool is_documents(Reader& r, const MapView& m);
/// A `kind: documents` dataset: target table and columns, owner, store_dir; `at` is its key.
DocumentsSpec load_documents(Reader& r, const MapView& m, const YAML::Node& at);
/// Reports the keys only a documents dataset takes, given to a dataset of records.
void refuse_document_keys(Reader& r, const MapView& m);
/// Checks every documents dataset's owner against the loaded datasets (an entity of records,
/// match fields it has, a whole identity tier) and fills in an owner entity left implicit.
void check_document_owners(Reader& r, Config& c);

/// identity[i]: {fuzzy: …} (load_fuzzy.cpp): blocking rules, comparisons, thresholds and the
/// weights file; checked against the entity's fields (which must already be loaded).
FuzzyTier load_fuzzy(Reader& r, const YAML::Node& n, const std::string& path, const Entity& ent);

/// jobs.NAME (load_job.cpp): source, writeback, after, checks, and the checks against the
/// sources and datasets of `c`, which must already be loaded.
Job load_job(Reader& r, const Entry& e, const std::string& path, const Config& c);

}  // namespace ingestd::config::detail
