-- The legacy system's database (a second PostgreSQL database).
CREATE TABLE auth_user (id int PRIMARY KEY, email text, first_name text, last_name text);
CREATE TABLE dispatch_patient (id int PRIMARY KEY, user_id int REFERENCES auth_user(id), document_number text,
                               updated_at timestamptz NOT NULL);
INSERT INTO auth_user VALUES (1, 'Ana@Example.com', 'ANA', 'PÉREZ'), (2, 'luis@example.com', 'luis', 'gómez'),
                             (3, 'ana@example.com', 'Ana María', 'Pérez');
INSERT INTO dispatch_patient VALUES (10, 1, '55.666.777', '2024-01-01 10:00+00'),
                                    (11, 2, '12345678', '2024-01-02 10:00+00'),
                                    (12, 3, NULL, '2024-01-03 10:00+00');
