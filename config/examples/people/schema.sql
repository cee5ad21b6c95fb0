-- Target tables of the people example (what a production database would already have).
CREATE TABLE IF NOT EXISTS public.persons (
  id bigserial PRIMARY KEY,
  cedula text,
  email text,
  phone text,
  first_name text NOT NULL,
  last_name text,
  birth_date date,
  address text,
  data_source text,
  csv_enriched boolean NOT NULL DEFAULT false,
  batch_id uuid,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.leads (
  id bigserial PRIMARY KEY,
  person_id bigint NOT NULL REFERENCES public.persons(id),
  program_type text NOT NULL,
  source_system text,
  batch_id uuid
);
