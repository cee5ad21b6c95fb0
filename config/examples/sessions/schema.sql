-- Ingestion batches for program instances: session rows carry their batch and program instance.
CREATE TABLE IF NOT EXISTS public.program_instances (id serial PRIMARY KEY, slug text UNIQUE NOT NULL);
INSERT INTO public.program_instances (slug) VALUES ('mentors-ukraine-2024-q4'), ('tutors-colombia-2025-q1')
  ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS public.sessions (
  id bigserial PRIMARY KEY,
  session_code text NOT NULL,
  mentor_email text,
  held_on date,
  minutes int,
  program_instance_id int NOT NULL REFERENCES public.program_instances(id),
  batch_id uuid NOT NULL
);
