-- ICE production tables: persons with their students and leads; schools from Salesforce.
CREATE TABLE IF NOT EXISTS public.schools (
  id serial PRIMARY KEY,
  salesforce_id text UNIQUE NOT NULL,
  name text NOT NULL
);
INSERT INTO public.schools (salesforce_id, name) VALUES ('SCH-A', 'Colegio Andino'), ('SCH-B', 'Colegio Bolívar')
  ON CONFLICT DO NOTHING;
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
  batch_id uuid
);
CREATE TABLE IF NOT EXISTS public.students (
  id bigserial PRIMARY KEY,
  person_id bigint NOT NULL REFERENCES public.persons(id),
  grade int CHECK (grade BETWEEN 1 AND 13),
  school_id int REFERENCES public.schools(id),
  batch_id uuid
);
CREATE TABLE IF NOT EXISTS public.leads (
  id bigserial PRIMARY KEY,
  person_id bigint NOT NULL REFERENCES public.persons(id),
  program_type text NOT NULL,
  status text,
  source_system text,
  program text,
  batch_id uuid
);
