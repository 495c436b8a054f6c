-- The "Cesta de Preços" module's tables (the guide's cp_* tables; columns from its index list).
create table cp_fornecedores (
    id bigserial primary key,
    cnpj text not null,
    nome text not null,
    ativo boolean not null default true
);
create table cp_orcamentos (
    id bigserial primary key,
    numero text not null,
    status text not null default 'rascunho',
    created_at timestamptz not null default now()
);
create table cp_orcamento_itens (
    id bigserial primary key,
    orcamento_id bigint not null references cp_orcamentos on delete cascade,
    fornecedor_id bigint references cp_fornecedores,
    descricao text not null,
    preco numeric(14,2)
);
