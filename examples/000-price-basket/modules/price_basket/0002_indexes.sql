-- The guide's recommended indexes (its "Otimizações" section).
create index idx_cp_orcamentos_status on cp_orcamentos (status);
create index idx_cp_orcamentos_created_at on cp_orcamentos (created_at desc);
create index idx_cp_orcamentos_numero on cp_orcamentos (numero);
create index idx_cp_fornecedores_cnpj on cp_fornecedores (cnpj);
create index idx_cp_fornecedores_ativo on cp_fornecedores (ativo);
create index idx_cp_orcamento_itens_orcamento_id on cp_orcamento_itens (orcamento_id);
create index idx_cp_orcamento_itens_descricao on cp_orcamento_itens (descricao);
