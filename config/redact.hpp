// Secrets stay put (issue 16 item 6): one place that masks passwords in any text on its way out
// of the process — log lines, `ingestd check` output, results, dead-letter reasons, /status,
// config errors. The config loader remembers the secrets it reads (connection strings'
// passwords, secret Kafka properties, `file:` values); redact() masks those wherever they show
// up, and the password part of any connection URI or `password=` pair it finds besides.
#pragma once

#include <string>
#include <string_view>

namespace ingestd::config {

/// What a masked secret is replaced with.
inline constexpr std::string_view kRedacted = "***";

/// @brief Remembers the password of a connection string, in URI form
/// (`postgresql://user:PASSWORD@host/db`, also `?password=`) or keyword form (`password=…`),
/// well-formed or not: a malformed one is what libpq quotes back in its errors. Its
/// percent-decoded form too.
void remember_conninfo_secret(std::string_view conninfo);

/// @brief Remembers a secret value as a whole (a `file:` value, a Kafka `sasl.password`).
void remember_secret(std::string_view value);

/// True for the Kafka (librdkafka) properties whose value is a secret: `sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `sasl.oauthbearer.client.secret`, … (any name
/// ending in `password` or `secret`, and the inline PEM keys `ssl.key.pem`, `ssl_key`).
bool secret_kafka_property(std::string_view name);

/// @brief `text` with every secret masked as kRedacted: each remembered secret (of 4 bytes or
/// more) wherever it occurs, a quoted fragment of one ("…" as libpq quotes a malformed URL),
/// the password of every `scheme://user:PASSWORD@` and the value of every `…password=VALUE`
/// (and `…secret=`) pair. Safe to call from any thread.
std::string redact(std::string_view text);

}  // namespace ingestd::config
