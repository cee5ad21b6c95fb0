-- Identity keys and lineage are written for every row of every load; their btrees are the
-- most expensive part of a load. Two changes make them cheaper:
-- * the batch_id index on identity_keys served only rollback, which now finds a batch's keys
--   through its records' lineage (the table_name, record_id indexes);
-- * keys and record ids are compared byte-wise (COLLATE "C"): nobody sorts them
--   linguistically, and a libc collation costs about 15% on every index insert. Comparisons
--   with text of the database's default collation take the column's collation.
DROP INDEX IF EXISTS {{schema}}.identity_keys_batch;
ALTER TABLE {{schema}}.identity_keys
  ALTER COLUMN table_name TYPE text COLLATE "C",
  ALTER COLUMN key TYPE text COLLATE "C",
  ALTER COLUMN record_id TYPE text COLLATE "C";
ALTER TABLE {{schema}}.row_lineage
  ALTER COLUMN table_name TYPE text COLLATE "C",
  ALTER COLUMN record_id TYPE text COLLATE "C";
