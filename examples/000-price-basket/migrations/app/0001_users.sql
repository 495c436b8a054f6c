-- The app's own tables (Laravel's users), created in every tenant's database as its owner role.
create extension if not exists pgcrypto;
create table if not exists users (
    id bigserial primary key,
    name text not null,
    email text not null unique,
    password text not null,            -- bcrypt, as Laravel's Hash::check expects
    role text not null default 'user',
    created_at timestamptz not null default now()
);
