// A file.arrived event for a `kind: documents` dataset (issue 17): the file becomes one row of
// the documents table, linked to the owner its metadata leads to; optionally copied into a
// content-addressed store.
#pragma once

#include <string>

#include "handlers/file_arrival/file_arrival.hpp"

namespace ingestd::file_arrival {

/// @brief The announced file, opened once beneath a root and hashed (file_arrival.cpp).
struct DocumentFile {
  const OpenedFile& file;
  std::string path, sha256;
  uint64_t size = 0;
};

/// Stores one document in its batch: finds the owner, answers `duplicate` when the owner has
/// this sha256 already, else copies the file into store_dir (not in a dry run) and inserts the
/// row; the batch, inbox row and offset commit with it. Throws BatchError when it cannot.
Outcome load_document(const Event& ev, Services& svc, EventCommit& commit, const DocumentFile& f,
                      const std::string& batch_id);

/// The media type libmagic reads from an open file's first bytes (application/pdf, image/png, …).
std::string media_type(int fd);

/// Where a file with this sha256 lives in a content-addressed store: DIR/ab/cd/<sha256>.
std::string store_path(const std::string& store_dir, const std::string& sha256);

/// Copies what `fd` reads into store_path() atomically (a temporary file beside it, fsync,
/// rename, fsync of the directory), unless a file with that content is already there. Returns
/// the path; throws BatchError when the copy's content is not `sha256` (the file changed).
std::string store_copy(int fd, const std::string& store_dir, const std::string& sha256);

}  // namespace ingestd::file_arrival
