-- The tenant's first admin, with the one-time password the fleet generated (`fleet admin-credentials`).
insert into users (name, email, password, role)
values ('Administrador ' || %(tenant)s, %(email)s, crypt(%(password)s, gen_salt('bf', 10)), 'admin')
on conflict (email) do update set password = excluded.password, role = 'admin';
