-- Customer backfill: leads exist, customers do not yet; jobs hang off leads.
CREATE TABLE IF NOT EXISTS public.customers (
  id bigserial PRIMARY KEY,
  psid text,
  phone text,
  email text,
  first_lead_id bigint,
  grouped_by_tier int,
  batch_id uuid
);
CREATE TABLE IF NOT EXISTS public.leads (
  id bigserial PRIMARY KEY,
  psid text,
  phone text,
  email text,
  customer_id bigint REFERENCES public.customers(id)
);
CREATE TABLE IF NOT EXISTS public.jobs (
  id bigserial PRIMARY KEY,
  lead_id bigint NOT NULL REFERENCES public.leads(id),
  customer_id bigint REFERENCES public.customers(id)
);
INSERT INTO public.leads (psid, phone, email) VALUES
  ('PSID-1', '300 111 2233', 'ana@example.com'),     -- 1 \
  ('PSID-1', NULL, 'ana.work@example.com'),          -- 2  } one customer by PSID
  (NULL, '(300) 111-2233', NULL),                    -- 3  } and phone (10+ digits)
  (NULL, NULL, 'ANA.WORK@example.com'),              -- 4 /  and e-mail
  (NULL, '555-0101', 'luis@example.com'),            -- 5 \ short phone is no key:
  (NULL, '555-0101', NULL),                          -- 6    its own customer
  (NULL, NULL, 'luis@example.com'),                  -- 7 /  joins 5 by e-mail
  (NULL, NULL, NULL);                                -- 8    nothing: one customer for this lead
INSERT INTO public.jobs (lead_id) VALUES (1), (3), (5), (6), (8);
