-- Target of the legacy migration.
CREATE TABLE IF NOT EXISTS public.patients (
  id bigserial PRIMARY KEY,
  document_number text,
  email text,
  first_name text NOT NULL,
  last_name text,
  legacy_patient_id bigint,
  data_source text,
  batch_id uuid
);
